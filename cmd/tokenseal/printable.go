package main

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable is s as tokenseal prints or writes a string that a token (or
// whoever wrote to it) chose: a key's CKA_LABEL, a token's label,
// manufacturer, model or serial, a slot's description. Such a string may
// hold newlines, escape sequences or bidirectional overrides that would
// forge lines of a table, of an exported key file or of a terminal. A
// string of graphic characters and spaces without a double quote or a
// backslash is printed as it is; any other is printed Go-quoted
// ("a\nb"), so the two cannot be confused. JSON output needs none of
// this: encoding/json escapes what it must.
func printable(s string) string {
	if isPlain(s) {
		return s
	}
	return strconv.QuoteToGraphic(s)
}

func isPlain(s string) bool {
	if !utf8.ValidString(s) || strings.ContainsAny(s, `"\`) {
		return false
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) { // controls, formats (bidi overrides), unassigned
			return false
		}
	}
	return true
}

// printJSON writes v as indented JSON, the form of every --json output.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
