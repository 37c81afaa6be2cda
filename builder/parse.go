package builder

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Limits that keep a hostile Dockerfile within bounded time and memory.
const (
	MaxDockerfileSize = 16 << 20 // bytes
	MaxInstructions   = 100000
)

// Dockerfile is a parsed Dockerfile. Parsing expands nothing; Plan does.
type Dockerfile struct {
	// Name is how messages refer to the file ("Dockerfile", "app.Dockerfile").
	Name string
	// AST is buildkit's syntax tree; Plan builds fresh instructions from it
	// each time, since expansion changes instructions in place.
	AST *parser.Node
	// EscapeToken is the escape directive's character ('\\' or '`').
	EscapeToken rune
	// Syntax is the "# syntax=" directive, if any: accepted and ignored.
	Syntax string
	// Warnings are the parser's notes (empty continuation lines, ...).
	Warnings []string
	// Stages and MetaArgs are the instructions as parsed (unexpanded).
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand
}

// Error is a problem at a place in a Dockerfile.
type Error struct {
	File string
	Line int // 0 when the problem is not at one line
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// locate wraps err with the Dockerfile's name and the first line buildkit
// attached to it, or line when it attached none.
func locate(file string, line int, err error) error {
	if err == nil {
		return nil
	}
	var be *Error
	if errors.As(err, &be) {
		return err
	}
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
		err = le.Unwrap()
	}
	var ue *instructions.UnknownInstructionError
	if errors.As(err, &ue) {
		line = ue.Line
	}
	return &Error{File: file, Line: line, Err: errors.New(cleanMessage(err))}
}

// cleanMessage drops buildkit's internal wrapping prefixes, which read
// oddly outside buildkit ("dockerfile parse error on line 3: ...").
func cleanMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "dockerfile parse error on line "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			msg = msg[:i] + msg[i+j+2:]
		}
	}
	return msg
}

func rangeLine(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

// Parse parses a Dockerfile named name (for messages).
func Parse(name string, data []byte) (*Dockerfile, error) {
	if name == "" {
		name = "Dockerfile"
	}
	if len(data) > MaxDockerfileSize {
		return nil, &Error{File: name, Err: fmt.Errorf("the Dockerfile is %d bytes; the limit is %d", len(data), MaxDockerfileSize)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{File: name, Err: errors.New("the Dockerfile is empty")}
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, locate(name, 0, err)
	}
	if n := len(res.AST.Children); n > MaxInstructions {
		return nil, &Error{File: name, Err: fmt.Errorf("%d instructions: the limit is %d", n, MaxInstructions)}
	}
	df := &Dockerfile{Name: name, AST: res.AST, EscapeToken: res.EscapeToken}
	for _, w := range res.Warnings {
		df.Warnings = append(df.Warnings, fmt.Sprintf("%s:%d: %s", name, rangeLine([]parser.Range{*w.Location}), w.Short))
	}
	if syn, _, _, ok := parser.DetectSyntax(data); ok {
		df.Syntax = syn
	}
	df.Stages, df.MetaArgs, err = parseInstructions(name, res.AST)
	if err != nil {
		return nil, err
	}
	if len(df.Stages) == 0 {
		return nil, &Error{File: name, Line: 1, Err: errors.New("no FROM instruction: a Dockerfile must start with FROM (after ARGs and directives)")}
	}
	return df, nil
}

func parseInstructions(name string, ast *parser.Node) ([]instructions.Stage, []instructions.ArgCommand, error) {
	stages, metaArgs, err := instructions.Parse(ast, nil)
	if err != nil {
		return nil, nil, locate(name, 0, err)
	}
	return stages, metaArgs, nil
}
