package path

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrSyntax wraps every error Parse returns.
var ErrSyntax = errors.New("invalid location")

type parser struct {
	sc  scanner
	tok token
	err error // the scanner's first error
}

func (p *parser) next() {
	p.tok = p.sc.next()
	if p.tok.kind == tokError && p.err == nil {
		p.err = fmt.Errorf("%w: at position %d: %s", ErrSyntax, p.tok.pos, p.tok.text)
	}
}

func (p *parser) errorf(format string, args ...any) error {
	if p.err != nil {
		return p.err
	}
	return fmt.Errorf("%w: at position %d: %s", ErrSyntax, p.tok.pos, fmt.Sprintf(format, args...))
}

// Parse reads a location: dot-separated field names, each optionally
// followed by one list selector [key: value] or [key: *]. A name or key is
// letters, digits, '_' and '-', not starting with a digit, or any text in
// single or double quotes (a backslash escapes the next character); a key
// value is such a name, a non-negative integer, or the glob *. Spaces may
// separate tokens. The empty string parses to an empty path.
func Parse(s string) (Path, error) {
	p := &parser{sc: scanner{in: s}}
	p.next()
	var out Path
	if p.tok.kind == tokEOF {
		return out, p.err
	}
	for {
		if p.tok.kind != tokIdent {
			return nil, p.errorf("expected a field name, got %s", p.tok)
		}
		out = append(out, Node{Kind: Field, Name: p.tok.text})
		p.next()
		if p.tok.kind == tokLBracket {
			n, err := p.list()
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		switch p.tok.kind {
		case tokEOF:
			if p.err != nil {
				return nil, p.err
			}
			return out, nil
		case tokDot:
			p.next()
			if p.tok.kind == tokEOF && p.err == nil {
				return nil, p.errorf("trailing '.': a field name must follow it")
			}
		default:
			return nil, p.errorf("expected '.' or the end, got %s", p.tok)
		}
	}
}

// list reads [key: value] from the '['.
func (p *parser) list() (Node, error) {
	p.next()
	if p.tok.kind != tokIdent {
		return Node{}, p.errorf("expected the key field of a list selector, got %s", p.tok)
	}
	n := Node{Kind: List, Name: p.tok.text}
	p.next()
	if p.tok.kind != tokColon {
		return Node{}, p.errorf("expected ':' after the key field %q, got %s", n.Name, p.tok)
	}
	p.next()
	switch p.tok.kind {
	case tokGlob:
		n.Glob = true
	case tokIdent:
		n.Value = p.tok.text
	case tokInt:
		v, err := strconv.ParseInt(p.tok.text, 10, 64)
		if err != nil {
			return Node{}, p.errorf("key value %s of %q is not a 64-bit integer", p.tok.text, n.Name)
		}
		n.Value = v
	default:
		return Node{}, p.errorf("expected the key value of %q or *, got %s", n.Name, p.tok)
	}
	p.next()
	if p.tok.kind != tokRBracket {
		return Node{}, p.errorf("expected ']' to close the list selector, got %s", p.tok)
	}
	p.next()
	return n, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokError
	tokIdent
	tokInt
	tokDot
	tokLBracket
	tokRBracket
	tokColon
	tokGlob
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "the end"
	case tokIdent:
		return fmt.Sprintf("name %q", t.text)
	case tokInt:
		return "integer " + t.text
	case tokError:
		return t.text
	default:
		return fmt.Sprintf("'%s'", t.text)
	}
}

// scanner splits a location into tokens.
type scanner struct {
	in  string
	pos int
}

func (s *scanner) next() token {
	for s.pos < len(s.in) && isSpace(s.in[s.pos]) {
		s.pos++
	}
	start := s.pos
	if s.pos >= len(s.in) {
		return token{kind: tokEOF, pos: start}
	}
	r, w := utf8.DecodeRuneInString(s.in[s.pos:])
	switch {
	case isDigit(r):
		for s.pos < len(s.in) && isDigit(rune(s.in[s.pos])) {
			s.pos++
		}
		return token{kind: tokInt, text: s.in[start:s.pos], pos: start}
	case isIdent(r):
		for s.pos < len(s.in) && isIdent(rune(s.in[s.pos])) {
			s.pos++
		}
		return token{kind: tokIdent, text: s.in[start:s.pos], pos: start}
	case r == '"' || r == '\'':
		return s.quoted(r)
	}
	s.pos += w
	switch r {
	case '.':
		return token{kind: tokDot, text: ".", pos: start}
	case '[':
		return token{kind: tokLBracket, text: "[", pos: start}
	case ']':
		return token{kind: tokRBracket, text: "]", pos: start}
	case ':':
		return token{kind: tokColon, text: ":", pos: start}
	case '*':
		return token{kind: tokGlob, text: "*", pos: start}
	}
	return token{kind: tokError, text: fmt.Sprintf("unexpected character %q (quote names that contain it)", r), pos: start}
}

// quoted reads a quoted name from its opening quote q.
func (s *scanner) quoted(q rune) token {
	start := s.pos
	s.pos++
	var b strings.Builder
	for s.pos < len(s.in) {
		r, w := utf8.DecodeRuneInString(s.in[s.pos:])
		s.pos += w
		switch r {
		case q:
			return token{kind: tokIdent, text: b.String(), pos: start}
		case '\\':
			if s.pos < len(s.in) {
				e, ew := utf8.DecodeRuneInString(s.in[s.pos:])
				s.pos += ew
				b.WriteRune(e)
			}
		default:
			b.WriteRune(r)
		}
	}
	return token{kind: tokError, text: "unterminated quoted name", pos: start}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isIdent(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || isDigit(r) || r == '_' || r == '-'
}
