package rule

import _ "embed"

//go:embed builtin.xml
var builtinXML []byte

// BuiltinName is the file name diagnostics use for the built-in rules.
const BuiltinName = "builtin:ids_rules.xml"

// Builtin returns the built-in IDS rule set: first sighting of a
// signature between two addresses (20100, level 8), any IDS event (20101,
// level 6), 8 of them within 120 s from one source or for one signature
// (20151/20152, level 10), and 3 of those within 3800 s (20161/20162,
// level 11), as OSSEC's stock IDS rules behave.
func Builtin() Source { return Source{Name: BuiltinName, Data: builtinXML} }
