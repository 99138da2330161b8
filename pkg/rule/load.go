package rule

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Source is one rule file's name (for diagnostics) and contents.
type Source struct {
	Name string
	Data []byte
}

// Error is a problem in a rule file, at a position.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// Load parses the sources in order (earlier files' rules are tried first
// among equals) and builds the rule tree. It returns every problem it
// finds, in file order; the Set is nil when there are any.
func Load(srcs []Source) (*Set, []*Error) {
	l := &loader{byID: map[int]*Rule{}}
	for i, src := range srcs {
		l.file(i, src)
	}
	l.link()
	if len(l.errs) > 0 {
		sort.SliceStable(l.errs, func(i, j int) bool {
			a, b := l.errs[i], l.errs[j]
			if a.fileIdx != b.fileIdx {
				return a.fileIdx < b.fileIdx
			}
			if a.Pos.Line != b.Pos.Line {
				return a.Pos.Line < b.Pos.Line
			}
			return a.Pos.Col < b.Pos.Col
		})
		out := make([]*Error, len(l.errs))
		for i, e := range l.errs {
			out[i] = &e.Error
		}
		return nil, out
	}
	return l.set(), nil
}

type posError struct {
	Error
	fileIdx int
}

type loader struct {
	rules []*Rule
	byID  map[int]*Rule
	errs  []posError
	// where each rule's cross-references were written, for link errors
	refs map[*Rule]*ruleRefs
}

type ruleRefs struct {
	fileIdx                                    int
	idAttr, ifSID, ifMatchedSID, ifGroup, ifMG Pos
	frequency                                  Pos
}

// parser reads one file.
type parser struct {
	l     *loader
	idx   int
	name  string
	data  []byte
	lines []int // offsets of line starts
	d     *xml.Decoder
	vars  map[string]variable
	dead  bool // a syntax error ended the file
}

func (l *loader) file(idx int, src Source) {
	p := &parser{l: l, idx: idx, name: src.Name, data: src.Data, vars: map[string]variable{}}
	p.lines = append(p.lines, 0)
	for i, c := range src.Data {
		if c == '\n' {
			p.lines = append(p.lines, i+1)
		}
	}
	p.d = xml.NewDecoder(bytes.NewReader(src.Data))
	for {
		tok, start, err := p.next()
		if err == io.EOF {
			return
		}
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "group":
				p.group(t, start)
			case "var":
				p.variable(t, start)
			default:
				p.errAt(start, "unknown element <%s> (want <group> or <var>)", t.Name.Local)
				p.skip()
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				p.errAt(start, "unexpected text outside any element")
			}
		}
	}
}

// next returns the next token and the byte offset where it starts. A
// syntax error is reported and ends the file.
func (p *parser) next() (xml.Token, int, error) {
	if p.dead {
		return nil, 0, io.ErrUnexpectedEOF
	}
	off := int(p.d.InputOffset())
	tok, err := p.d.Token()
	if err != nil {
		p.dead = true
		if err != io.EOF {
			var se *xml.SyntaxError
			line, col := p.d.InputPos()
			msg := err.Error()
			if errors.As(err, &se) {
				msg = se.Msg
			}
			p.errPos(Pos{p.name, line, col}, "XML: %s", msg)
		}
		return nil, 0, err
	}
	if _, ok := tok.(xml.StartElement); ok {
		if i := bytes.IndexByte(p.data[off:], '<'); i >= 0 {
			off += i
		}
	}
	return xml.CopyToken(tok), off, nil
}

func (p *parser) skip() {
	if p.dead {
		return
	}
	if err := p.d.Skip(); err != nil {
		p.dead = true
		line, col := p.d.InputPos()
		p.errPos(Pos{p.name, line, col}, "XML: %v", err)
	}
}

func (p *parser) pos(off int) Pos {
	i := sort.Search(len(p.lines), func(i int) bool { return p.lines[i] > off }) - 1
	return Pos{p.name, i + 1, off - p.lines[i] + 1}
}

// attrPos finds attribute name inside the start tag at off.
func (p *parser) attrPos(off int, name string) Pos {
	end := bytes.IndexByte(p.data[off:], '>')
	if end < 0 {
		end = len(p.data) - off
	}
	tag := p.data[off : off+end]
	for i := 0; ; {
		j := bytes.Index(tag[i:], []byte(name))
		if j < 0 {
			return p.pos(off)
		}
		j += i
		before := j > 0 && (tag[j-1] == ' ' || tag[j-1] == '\t' || tag[j-1] == '\n' || tag[j-1] == '\r')
		rest := bytes.TrimLeft(tag[j+len(name):], " \t\r\n")
		if before && len(rest) > 0 && rest[0] == '=' {
			return p.pos(off + j)
		}
		i = j + 1
	}
}

func (p *parser) errAt(off int, format string, args ...any) {
	p.errPos(p.pos(off), format, args...)
}

func (p *parser) errPos(pos Pos, format string, args ...any) {
	p.l.errs = append(p.l.errs, posError{Error{pos, fmt.Sprintf(format, args...)}, p.idx})
}

// variable is a <var>'s value, already expanded, and how many levels of
// <var>s it was built from (1: none).
type variable struct {
	val   string
	depth int
}

// Expansion bounds: a <var> written from the previous one ten times, eight
// levels deep, is a 100 MB value from a file under 1 KB (it took 45 s and
// 4.5 GB). Real rule files nest one or two levels and stay far below the
// size.
const (
	// MaxExpansion is the longest text a $NAME expansion may produce.
	MaxExpansion = 64 << 10
	// MaxVarDepth is how many <var>s deep a value may be built.
	MaxVarDepth = 8
)

// subst replaces $NAME by the value of a defined <var>. It returns the
// text and the deepest <var> level it used (0: none). An expansion over
// MaxExpansion bytes is reported at pos, and the text returned as written
// with depth -1.
func (p *parser) subst(s string, pos Pos) (string, int) {
	if !strings.Contains(s, "$") || len(p.vars) == 0 {
		return s, 0
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '$' {
			j := i + 1
			for j < len(s) && (isNameByte(s[j])) {
				j++
			}
			if v, ok := p.vars[s[i+1:j]]; ok && j > i+1 {
				if b.Len()+len(v.val)+len(s)-j > MaxExpansion {
					p.errPos(pos, "expanding $%s makes a text longer than %d bytes (each <var> is pasted whole)", s[i+1:j], MaxExpansion)
					return s, -1
				}
				b.WriteString(v.val)
				depth = max(depth, v.depth)
				i = j - 1
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), depth
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// text reads the character data of the element just opened, up to its
// end; nested elements are errors.
func (p *parser) text(name string) string {
	var b strings.Builder
	for {
		tok, start, err := p.next()
		if err != nil {
			return b.String()
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.StartElement:
			p.errAt(start, "unexpected <%s> inside <%s>", t.Name.Local, name)
			p.skip()
		case xml.EndElement:
			return strings.TrimSpace(b.String())
		}
	}
}

func (p *parser) variable(t xml.StartElement, start int) {
	name := ""
	for _, a := range t.Attr {
		if a.Name.Local == "name" {
			name = a.Value
		} else {
			p.errPos(p.attrPos(start, a.Name.Local), "unknown attribute %q on <var>", a.Name.Local)
		}
	}
	val, depth := p.subst(p.text("var"), p.pos(start))
	if name == "" {
		p.errAt(start, "<var> without a name")
		return
	}
	if depth < 0 { // too long, reported: left undefined, so no error follows from it
		delete(p.vars, name)
		return
	}
	if depth+1 > MaxVarDepth {
		p.errAt(start, "<var> %q is built from <var>s %d levels deep, more than %d", name, depth+1, MaxVarDepth)
		delete(p.vars, name)
		return
	}
	p.vars[name] = variable{val, depth + 1}
}

func (p *parser) group(t xml.StartElement, start int) {
	var groups []string
	for _, a := range t.Attr {
		if a.Name.Local == "name" {
			v, _ := p.subst(a.Value, p.attrPos(start, a.Name.Local))
			groups = splitList(v)
		} else {
			p.errPos(p.attrPos(start, a.Name.Local), "unknown attribute %q on <group>", a.Name.Local)
		}
	}
	for {
		tok, off, err := p.next()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "rule":
				p.rule(t, off, groups)
			case "var":
				p.variable(t, off)
			default:
				p.errAt(off, "unknown element <%s> in <group> (want <rule> or <var>)", t.Name.Local)
				p.skip()
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				p.errAt(off, "unexpected text in <group>")
			}
		case xml.EndElement:
			return
		}
	}
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

func parseInt(s string, lo, hi int) (int, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "yes", "true":
		return true, true
	case "0", "no", "false":
		return false, true
	}
	return false, false
}

var categories = map[string]bool{"ids": true, "syslog": true, "firewall": true, "web-log": true, "squid": true, "windows": true, "ossec": true}

func (p *parser) rule(t xml.StartElement, start int, groups []string) {
	r := &Rule{Pos: p.pos(start), Groups: append([]string(nil), groups...)}
	refs := &ruleRefs{fileIdx: p.idx, idAttr: r.Pos}
	hasID, hasLevel, overwrite, hasTimeframe := false, false, false, false
	for _, a := range t.Attr {
		ap := p.attrPos(start, a.Name.Local)
		v, _ := p.subst(strings.TrimSpace(a.Value), ap)
		bad := func(want string) { p.errPos(ap, "bad %s %q: want %s", a.Name.Local, a.Value, want) }
		var ok bool
		switch a.Name.Local {
		case "id":
			hasID = true
			refs.idAttr = ap
			if r.ID, ok = parseInt(v, 1, MaxID); !ok {
				bad(fmt.Sprintf("a number from 1 to %d", MaxID))
			}
		case "level":
			hasLevel = true
			if r.Level, ok = parseInt(v, 0, 15); !ok {
				bad("a number from 0 to 15")
			}
		case "frequency":
			refs.frequency = ap
			if r.Frequency, ok = parseInt(v, 1, 9999); !ok {
				bad("a number from 1 to 9999")
				r.Frequency = 1
			}
		case "timeframe":
			hasTimeframe = true
			if r.Timeframe, ok = parseInt(v, 1, 999999); !ok {
				bad("a number of seconds from 1 to 999999")
			}
		case "ignore":
			if r.Ignore, ok = parseInt(v, 0, 999999); !ok {
				bad("a number of seconds from 0 to 999999")
			}
		case "noalert":
			if r.NoAlert, ok = parseBool(v); !ok {
				bad("yes or no")
			}
		case "overwrite":
			if overwrite, ok = parseBool(v); !ok {
				bad("yes or no")
			}
		default:
			p.errPos(ap, "unknown attribute %q on <rule>", a.Name.Local)
		}
	}
	if !hasID {
		p.errAt(start, "<rule> without an id")
	}
	if !hasLevel {
		p.errAt(start, "<rule> without a level")
	}
	if hasTimeframe && r.Frequency == 0 {
		p.errPos(p.attrPos(start, "timeframe"), "timeframe without frequency")
	}
	if r.Frequency > 0 && !hasTimeframe {
		r.Timeframe = 360 // OSSEC's default
	}
	seen := map[string]bool{}
	for {
		tok, off, err := p.next()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			p.option(r, refs, t, off, seen)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				p.errAt(off, "unexpected text in <rule>")
			}
		case xml.EndElement:
			if r.Frequency > 0 && len(r.IfMatchedSID) == 0 && r.IfMatchedGroup == "" {
				p.errPos(refs.frequency, "frequency without if_matched_sid or if_matched_group")
			}
			if r.Frequency == 0 && (seen["if_matched_sid"] || seen["if_matched_group"]) {
				p.errAt(start, "if_matched_sid/if_matched_group without frequency")
			}
			if hasID && r.ID > 0 {
				p.l.add(r, refs, overwrite, p)
			}
			return
		}
	}
}

// option reads one element of a <rule> (at off) into r; seen holds the
// elements a rule may have only once that it has had so far.
func (p *parser) option(r *Rule, refs *ruleRefs, t xml.StartElement, off int, seen map[string]bool) {
	name := t.Name.Local
	pos := p.pos(off)
	for _, a := range t.Attr {
		p.errPos(p.attrPos(off, a.Name.Local), "unknown attribute %q on <%s>", a.Name.Local, name)
	}
	v, _ := p.subst(p.text(name), pos)
	if once(name) {
		if seen[name] {
			p.errPos(pos, "more than one <%s> in a rule", name)
			return
		}
		seen[name] = true
	}
	var err error
	switch name {
	case "match", "regex", "id", "category", "decoded_as":
		err = condition(r, name, v)
	case "srcip", "dstip":
		err = ipCondition(r, name, v)
	case "if_sid", "if_matched_sid", "if_group", "if_matched_group", "if_level":
		err = parent(r, refs, name, v, pos)
	case "same_source_ip", "same_id", "different_srcip", "if_fts":
		if v != "" {
			p.errPos(pos, "<%s> takes no value", name)
		}
		switch name {
		case "same_source_ip":
			r.SameSourceIP = true
		case "same_id":
			r.SameID = true
		case "different_srcip":
			r.DifferentSrcIP = true
		case "if_fts":
			r.IfFTS = true
		}
	case "description":
		if r.Description != "" && v != "" {
			r.Description += " "
		}
		r.Description += v
	case "group":
		r.Groups = append(r.Groups, splitList(v)...)
	case "options":
		err = options(r, v)
	default:
		p.errPos(pos, "unknown element <%s> in <rule>", name)
		return
	}
	if err != nil {
		p.errPos(pos, "%v", err)
	}
}

// once reports whether a rule may hold the element only once.
func once(name string) bool {
	switch name {
	case "match", "regex", "id", "category", "decoded_as",
		"if_sid", "if_matched_sid", "if_group", "if_matched_group", "if_level":
		return true
	}
	return false
}

// condition reads one of the event's own conditions: <match>, <regex>,
// <id> (patterns), <category>, <decoded_as>.
func condition(r *Rule, name, v string) error {
	var err error
	switch name {
	case "match":
		r.Match, err = CompileMatch(v)
	case "regex":
		r.Regex, err = CompileRegex(v)
	case "id":
		r.SigID, err = CompileMatch(v)
	case "category":
		if !categories[v] {
			err = errorf("unknown category %q (want ids, syslog, firewall, web-log, squid, windows or ossec)", v)
		}
		r.Category = v
	case "decoded_as":
		r.DecodedAs = v
	}
	return err
}

// ipCondition reads a <srcip> or <dstip> (a rule may hold several).
func ipCondition(r *Rule, name, v string) error {
	c, err := parseIPCond(v)
	switch {
	case err != nil:
		return err
	case name == "srcip":
		r.SrcIP = append(r.SrcIP, c)
	default:
		r.DstIP = append(r.DstIP, c)
	}
	return nil
}

// parent reads what places r in the tree: <if_sid>, <if_matched_sid>
// (lists of rule ids), <if_group>, <if_matched_group>, <if_level>. The
// references are resolved by link; refs keeps where they were written.
func parent(r *Rule, refs *ruleRefs, name, v string, pos Pos) error {
	var err error
	switch name {
	case "if_sid", "if_matched_sid":
		var ids []int
		for _, f := range splitList(v) {
			n, ok := parseInt(f, 1, MaxID)
			if !ok {
				err = errorf("bad rule id %q in <%s>", f, name)
				break
			}
			ids = append(ids, n)
		}
		if len(ids) == 0 && err == nil {
			err = errorf("<%s> names no rule", name)
		}
		if name == "if_sid" {
			r.IfSID, refs.ifSID = ids, pos
		} else {
			r.IfMatchedSID, refs.ifMatchedSID = ids, pos
		}
	case "if_group", "if_matched_group":
		if v == "" {
			err = errorf("<%s> names no group", name)
		}
		if name == "if_group" {
			r.IfGroup, refs.ifGroup = v, pos
		} else {
			r.IfMatchedGroup, refs.ifMG = v, pos
		}
	case "if_level":
		n, ok := parseInt(v, 1, 15)
		if !ok {
			err = errorf("bad if_level %q: want a number from 1 to 15", v)
		}
		r.IfLevel = n
	}
	return err
}

// options reads an <options> list: alert_by_email, no_email_alert, no_log.
func options(r *Rule, v string) error {
	var err error
	for _, o := range splitList(v) {
		switch o {
		case "alert_by_email", "no_email_alert":
			want := o == "alert_by_email"
			if r.Mail != nil && *r.Mail != want {
				err = errorf("options alert_by_email and no_email_alert contradict each other")
			}
			r.Mail = &want
		case "no_log":
			r.NoLog = true
		default:
			err = errorf("unknown option %q (want alert_by_email, no_email_alert or no_log)", o)
		}
	}
	return err
}

func parseIPCond(s string) (IPCond, error) {
	c := IPCond{}
	if strings.HasPrefix(s, "!") {
		c.Not = true
		s = s[1:]
	}
	if strings.Contains(s, "/") {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return c, errorf("bad address or network %q", s)
		}
		c.Prefix = pf.Masked()
		return c, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return c, errorf("bad address or network %q", s)
	}
	a = a.Unmap()
	c.Prefix = netip.PrefixFrom(a, a.BitLen())
	return c, nil
}

func (l *loader) add(r *Rule, refs *ruleRefs, overwrite bool, p *parser) {
	if l.refs == nil {
		l.refs = map[*Rule]*ruleRefs{}
	}
	l.refs[r] = refs
	if old, ok := l.byID[r.ID]; ok {
		if !overwrite {
			p.errPos(refs.idAttr, "duplicate rule id %d (first defined at %s)", r.ID, old.Pos)
			return
		}
		r.Index = old.Index
		l.rules[old.Index] = r
		l.byID[r.ID] = r
		return
	}
	r.Index = len(l.rules)
	l.rules = append(l.rules, r)
	l.byID[r.ID] = r
}

func (l *loader) errRef(r *Rule, pos Pos, format string, args ...any) {
	l.errs = append(l.errs, posError{Error{pos, fmt.Sprintf(format, args...)}, l.refs[r].fileIdx})
}

// link resolves references and builds the tree.
func (l *loader) link() {
	groups := map[string][]*Rule{}
	for _, r := range l.rules {
		for _, g := range r.Groups {
			groups[g] = append(groups[g], r)
		}
	}
	parents := make([][]*Rule, len(l.rules))
	for _, r := range l.rules {
		parents[r.Index] = l.parents(r, groups)
	}
	for _, r := range l.rules {
		for _, p := range parents[r.Index] {
			p.Children = append(p.Children, r)
		}
	}
	for _, r := range l.rules {
		sortRules(r.Children)
	}
	l.checkCycles()
}

// parents resolves r's if_sid, if_matched_sid, if_group, if_matched_group
// and if_level into its parents (each once, never r itself), adding the
// if_matched_ ones to r.Base; a reference to no rule is an error. groups
// lists the rules of each group.
func (l *loader) parents(r *Rule, groups map[string][]*Rule) []*Rule {
	var parents []*Rule
	add := func(p *Rule) {
		if p != r {
			parents = appendOnce(parents, p)
		}
	}
	refs := l.refs[r]
	for _, id := range r.IfSID {
		if p := l.byID[id]; p == r {
			l.errRef(r, refs.ifSID, "rule %d names itself in if_sid (a cycle: it could only match after itself)", id)
		} else if p != nil {
			add(p)
		} else {
			l.errRef(r, refs.ifSID, "if_sid %d names no rule", id)
		}
	}
	for _, id := range r.IfMatchedSID {
		if p := l.byID[id]; p == r {
			l.errRef(r, refs.ifMatchedSID, "rule %d names itself in if_matched_sid (a cycle: it could only match after itself)", id)
		} else if p != nil {
			add(p)
			r.Base = appendOnce(r.Base, p)
		} else {
			l.errRef(r, refs.ifMatchedSID, "if_matched_sid %d names no rule", id)
		}
	}
	if r.IfGroup != "" {
		if len(groups[r.IfGroup]) == 0 {
			l.errRef(r, refs.ifGroup, "if_group %q names no rule's group", r.IfGroup)
		}
		for _, p := range groups[r.IfGroup] {
			add(p)
		}
	}
	if r.IfMatchedGroup != "" {
		if len(groups[r.IfMatchedGroup]) == 0 {
			l.errRef(r, refs.ifMG, "if_matched_group %q names no rule's group", r.IfMatchedGroup)
		}
		for _, p := range groups[r.IfMatchedGroup] {
			if p != r {
				add(p)
				r.Base = appendOnce(r.Base, p)
			}
		}
	}
	if r.IfLevel > 0 {
		// not under other if_level rules: two of them would each be
		// the other's parent
		for _, p := range l.rules {
			if p.Level >= r.IfLevel && p.IfLevel == 0 {
				add(p)
			}
		}
	}
	return parents
}

// checkCycles reports rules that are their own ancestor (one for each
// cycle met): a cycle would make the walk endless.
func (l *loader) checkCycles() {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(l.rules))
	var visit func(r *Rule) bool
	visit = func(r *Rule) bool {
		color[r.Index] = grey
		for _, c := range r.Children {
			switch color[c.Index] {
			case grey:
				l.errRef(c, c.Pos, "rule %d is its own ancestor (a cycle through if_sid, if_group or if_level)", c.ID)
				return false
			case white:
				if !visit(c) {
					return false
				}
			}
		}
		color[r.Index] = black
		return true
	}
	for _, r := range l.rules {
		if color[r.Index] == white {
			visit(r)
		}
	}
}

func appendOnce(list []*Rule, r *Rule) []*Rule {
	for _, x := range list {
		if x == r {
			return list
		}
	}
	return append(list, r)
}

// sortRules orders siblings: highest level first, equal levels in load order.
func sortRules(rs []*Rule) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Level != rs[j].Level {
			return rs[i].Level > rs[j].Level
		}
		return rs[i].Index < rs[j].Index
	})
}

func (l *loader) set() *Set {
	s := &Set{Rules: l.rules, byID: l.byID}
	for _, r := range l.rules {
		if len(r.IfSID) == 0 && len(r.IfMatchedSID) == 0 && r.IfGroup == "" && r.IfMatchedGroup == "" && r.IfLevel == 0 {
			s.Root = append(s.Root, r)
		}
	}
	sortRules(s.Root)
	return s
}
