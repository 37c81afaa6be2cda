package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
	"text/template"
	"unicode"

	"github.com/urfave/cli/v2"
)

func formatFlag() cli.Flag {
	return &cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "format the output with a Go template, or 'json'"}
}

// templateFuncs are docker's template functions.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"title": strings.Title, //nolint:staticcheck // docker's behaviour
	"truncate": func(s string, n int) string {
		if len(s) > n {
			return s[:n]
		}
		return s
	},
	"pad":     func(s string, pre, post int) string { return strings.Repeat(" ", pre) + s + strings.Repeat(" ", post) },
	"println": fmt.Sprintln,
}

// parseFormat compiles a --format value. "table ..." keeps a header row.
func parseFormat(format string) (tmpl *template.Template, table bool, err error) {
	format = strings.ReplaceAll(format, `\t`, "\t")
	format = strings.ReplaceAll(format, `\n`, "\n")
	if strings.HasPrefix(format, "table") {
		table = true
		format = strings.TrimSpace(strings.TrimPrefix(format, "table"))
	}
	tmpl, err = template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, false, Exit(exitUsageFailed, fmt.Sprintf("invalid --format template: %v", err))
	}
	return tmpl, table, nil
}

// printFormatted renders items one per line with a --format value; "json"
// prints each item as one JSON line.
func printFormatted(c *cli.Context, format string, items []any) error {
	w := c.App.Writer
	if format == "json" || format == "{{json .}}" {
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return err
			}
			fmt.Fprintln(w, string(b))
		}
		return nil
	}
	tmpl, table, err := parseFormat(format)
	if err != nil {
		return err
	}
	var out io.Writer = w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		out = tw
		if len(items) > 0 {
			// As docker: the header row is the template run over a map
			// from each field name to its column title.
			if err := tmpl.Execute(out, tableHeaders(items[0])); err == nil {
				fmt.Fprintln(out)
			}
		}
	}
	for _, it := range items {
		if err := tmpl.Execute(out, it); err != nil {
			return Exit(exitUsageFailed, fmt.Sprintf("executing --format template: %v", err))
		}
		fmt.Fprintln(out)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// printKV prints aligned "Key: value" lines.
func printKV(w io.Writer, kv [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	for _, p := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// printJSON prints v indented, as docker's inspect does.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// headerTitles are docker's column titles where they are not simply the
// field name in capitals with spaces between words.
var headerTitles = map[string]string{
	"CreatedSince": "CREATED",
	"RunningFor":   "CREATED",
	"CreatedAt":    "CREATED AT",
	"LocalVolumes": "LOCAL VOLUMES",
	"TotalCount":   "TOTAL",
	"Names":        "NAMES",
	"Repository":   "REPOSITORY",
}

// idTitles name the ID column by the kind of object listed.
var idTitles = map[string]string{
	"ImageRow": "IMAGE ID",
}

// tableHeaders maps every field of item (a struct or pointer to one) to
// its column title.
func tableHeaders(item any) map[string]string {
	v := reflect.Indirect(reflect.ValueOf(item))
	out := map[string]string{}
	if v.Kind() != reflect.Struct {
		return out
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		title, ok := headerTitles[f.Name]
		if !ok {
			title = camelTitle(f.Name)
		}
		if f.Name == "ID" {
			title = "ID"
			if id, ok := idTitles[t.Name()]; ok {
				title = id
			} else if strings.Contains(strings.ToLower(t.Name()), "container") || strings.Contains(strings.ToLower(t.Name()), "ps") {
				title = "CONTAINER ID"
			} else if strings.Contains(strings.ToLower(t.Name()), "network") {
				title = "NETWORK ID"
			}
		}
		out[f.Name] = title
	}
	return out
}

// camelTitle turns "MountPoint" into "MOUNT POINT".
func camelTitle(name string) string {
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) && !unicode.IsUpper(rune(name[i-1])) {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// labelMatches is docker's label filter: "KEY" matches a label KEY with any
// value, "KEY=VALUE" only that value.
func labelMatches(labels map[string]string, filter string) bool {
	k, v, hasV := strings.Cut(filter, "=")
	got, ok := labels[k]
	return ok && (!hasV || got == v)
}
