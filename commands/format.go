package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"

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
