package docs

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The convention, as docs/README.md states it for readers:
//
//   - A ```console block holds commands, each a line starting with "$ ",
//     followed by its output. The output must match exactly, after runs of
//     whitespace are collapsed and blank lines dropped, except that a line
//     "..." stands for any number of lines and "..." inside a line for any
//     text. A command shown without output must print nothing.
//   - A ```sh (or shell, bash) block holds commands only, one a line
//     (comment lines are skipped); their output is not checked.
//   - A trailing shell comment may start with markers, comma-separated and
//     optionally followed by ": explanation": "exit N" (the expected exit
//     status; 0 by default) and "retry Ns" (run again, once a second, until
//     the exit status and output match or N seconds have passed).
//   - A line starting with "$ " in a block of any other language is an
//     error, so that no command escapes the test.

// command is one command found in the documentation.
type command struct {
	file string // relative to the repository root
	line int
	text string // as given to bash, comment included
	key  string // without its comment, whitespace collapsed
	// checkOutput is true in console blocks: want is the whole output.
	checkOutput bool
	want        []string
	exit        int
	retry       time.Duration
}

func (c *command) where() string { return fmt.Sprintf("%s:%d", c.file, c.line) }

var (
	fenceRE  = regexp.MustCompile("^(`{3,})\\s*([A-Za-z0-9_+-]*)")
	markerRE = regexp.MustCompile(`^(exit \d+|retry \d+s)(, (exit \d+|retry \d+s))*(:.*)?$`)
)

// parseCommands reads the commands of one Markdown file.
func parseCommands(path, rel string) ([]*command, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		cmds           []*command
		fence, lang    string
		inBlock        bool
		blockStart     int
		blockCommands  int
		current        *command
		scanner        = bufio.NewScanner(f)
		lineNo         int
		errorsInParsed []string
	)
	fail := func(format string, args ...any) {
		errorsInParsed = append(errorsInParsed, fmt.Sprintf("%s:%d: ", rel, lineNo)+fmt.Sprintf(format, args...))
	}
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		lineNo++
		line := scanner.Text()
		if !inBlock {
			if m := fenceRE.FindStringSubmatch(line); m != nil {
				inBlock, fence, lang, blockStart, blockCommands, current = true, m[1], m[2], lineNo, 0, nil
			}
			continue
		}
		if strings.TrimSpace(line) == fence {
			if (lang == "console" || isShell(lang)) && blockCommands == 0 {
				lineNo = blockStart
				fail("%s block without a command", lang)
			}
			inBlock = false
			continue
		}
		switch {
		case lang == "console":
			if rest, ok := strings.CutPrefix(line, "$ "); ok {
				c, err := newCommand(rel, lineNo, rest, true)
				if err != nil {
					fail("%v", err)
					continue
				}
				cmds = append(cmds, c)
				current = c
				blockCommands++
				continue
			}
			if current == nil {
				if strings.TrimSpace(line) != "" {
					fail("output before any command in a console block")
				}
				continue
			}
			if strings.TrimSpace(line) != "" {
				current.want = append(current.want, line)
			}
		case isShell(lang):
			trimmed := strings.TrimSpace(line)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			c, err := newCommand(rel, lineNo, trimmed, false)
			if err != nil {
				fail("%v", err)
				continue
			}
			cmds = append(cmds, c)
			blockCommands++
		default:
			if strings.HasPrefix(line, "$ ") {
				fail("a command in a %q block: use ```console", lang)
			}
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", rel, err)
	}
	if inBlock {
		lineNo = blockStart
		fail("unclosed code block")
	}
	if len(errorsInParsed) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errorsInParsed, "\n"))
	}
	return cmds, nil
}

func isShell(lang string) bool { return lang == "sh" || lang == "shell" || lang == "bash" }

func newCommand(file string, line int, text string, checkOutput bool) (*command, error) {
	text = strings.TrimSpace(text)
	if strings.HasSuffix(text, `\`) {
		return nil, fmt.Errorf("continuation lines are not supported: write the command on one line")
	}
	c := &command{file: file, line: line, text: text, checkOutput: checkOutput}
	body, comment := splitComment(text)
	c.key = strings.Join(strings.Fields(body), " ")
	if c.key == "" {
		return nil, fmt.Errorf("empty command")
	}
	if strings.HasPrefix(comment, "exit") || strings.HasPrefix(comment, "retry") {
		if !markerRE.MatchString(comment) {
			return nil, fmt.Errorf("bad marker comment %q: want \"# exit N\", \"# retry Ns\" or both, comma-separated, then optionally \": why\"", comment)
		}
		markers, _, _ := strings.Cut(comment, ":")
		for m := range strings.SplitSeq(markers, ",") {
			word, arg, _ := strings.Cut(strings.TrimSpace(m), " ")
			switch word {
			case "exit":
				n, err := strconv.Atoi(arg)
				if err != nil {
					return nil, fmt.Errorf("bad exit marker %q: %w", m, err)
				}
				c.exit = n
			case "retry":
				d, err := time.ParseDuration(arg)
				if err != nil {
					return nil, fmt.Errorf("bad retry marker %q: %w", m, err)
				}
				c.retry = d
			}
		}
	}
	return c, nil
}

// splitComment splits a shell command line at its trailing comment: a '#'
// outside quotes at the start of a word. The comment is returned without
// the '#' and trimmed.
func splitComment(s string) (body, comment string) {
	var single, double bool
	for i, r := range s {
		switch {
		case r == '\'' && !double:
			single = !single
		case r == '"' && !single:
			double = !double
		case r == '#' && !single && !double && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
		}
	}
	return strings.TrimSpace(s), ""
}

// normalize collapses runs of whitespace and trims the line.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// outputLines are the non-blank lines of out, normalized.
func outputLines(out string) []string {
	var lines []string
	for l := range strings.SplitSeq(out, "\n") {
		if n := normalize(l); n != "" {
			lines = append(lines, n)
		}
	}
	return lines
}

// linePattern turns an expected line into an anchored regular expression
// in which "..." matches any text.
func linePattern(want string) *regexp.Regexp {
	parts := strings.Split(normalize(want), "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(strings.TrimSpace(p))
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// matchOutput reports whether the output lines match the expected ones,
// where an expected line "..." matches any number of lines. On a mismatch
// it returns the first expected line that no alignment could match.
func matchOutput(want []string, got []string) (bool, string) {
	pats := make([]*regexp.Regexp, len(want))
	for i, w := range want {
		if normalize(w) != "..." {
			pats[i] = linePattern(w)
		}
	}
	// best is the furthest expected line reached, for the error message.
	best := 0
	memo := map[[2]int]bool{}
	var match func(i, j int) bool
	match = func(i, j int) bool {
		if i > best {
			best = i
		}
		if i == len(want) {
			return j == len(got)
		}
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var ok bool
		if pats[i] == nil {
			for jj := j; jj <= len(got) && !ok; jj++ {
				ok = match(i+1, jj)
			}
		} else {
			ok = j < len(got) && pats[i].MatchString(got[j]) && match(i+1, j+1)
		}
		memo[k] = ok
		return ok
	}
	if match(0, 0) {
		return true, ""
	}
	if best < len(want) {
		return false, want[best]
	}
	return false, "(end of output: more lines than expected)"
}
