package token

import (
	"fmt"
	"net/url"

	"strings"
)

// URI is a parsed RFC 7512 PKCS#11 URI, e.g.
//
//	pkcs11:token=tokenseal;object=alice;type=private?pin-source=file:/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so
//
// Path attributes select a token and an object; of the query attributes
// module-path and pin-source are honoured, pin-value is refused (a PIN does
// not belong in a command line). Unknown path attributes in the standard
// set are kept in Path; vendor attributes (with a "-" in the name, RFC 7512
// section 2.3) are ignored as the RFC allows.
type URI struct {
	Path  map[string]string // decoded path attributes: token, serial, object, id, type, ...
	Query map[string]string // decoded query attributes: module-path, pin-source, ...
}

// knownPath are the RFC 7512 path attributes.
var knownPath = map[string]bool{
	"token": true, "manufacturer": true, "serial": true, "model": true,
	"library-manufacturer": true, "library-description": true, "library-version": true,
	"object": true, "type": true, "id": true, "slot-description": true,
	"slot-manufacturer": true, "slot-id": true,
}

// ParseURI parses a pkcs11: URI. Attribute values are percent-decoded;
// path attributes are separated by ';', query attributes by '&' (';' is
// accepted there too); an attribute may appear once. Errors match
// [ErrBadURI].
func ParseURI(s string) (*URI, error) {
	const scheme = "pkcs11:"
	if len(s) < len(scheme) || !strings.EqualFold(s[:len(scheme)], scheme) {
		return nil, fmt.Errorf("%w: missing pkcs11: scheme", ErrBadURI)
	}
	rest := s[len(scheme):]
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{Path: map[string]string{}, Query: map[string]string{}}
	if err := parseAttrs(path, ";", u.Path, true); err != nil {
		return nil, err
	}
	if err := parseAttrs(query, "&;", u.Query, false); err != nil {
		return nil, err
	}
	if _, ok := u.Query["pin-value"]; ok {
		return nil, fmt.Errorf("%w: pin-value is not accepted, use pin-source", ErrBadURI)
	}
	if t, ok := u.Path["type"]; ok {
		switch t {
		case "public", "private", "cert", "secret-key", "data":
		default:
			return nil, fmt.Errorf("%w: unknown type %q", ErrBadURI, t)
		}
	}
	return u, nil
}

func parseAttrs(s, seps string, into map[string]string, isPath bool) error {
	if s == "" {
		return nil
	}
	// Empty attributes (a trailing or doubled separator) are skipped.
	parts := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(seps, r) })
	for _, p := range parts {
		name, rawVal, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return fmt.Errorf("%w: attribute %q is not name=value", ErrBadURI, p)
		}
		name = strings.ToLower(name)
		val, err := url.PathUnescape(rawVal)
		if err != nil {
			return fmt.Errorf("%w: attribute %s: bad percent-encoding", ErrBadURI, name)
		}
		if isPath && !knownPath[name] {
			if strings.Contains(name, "-") {
				continue // vendor-specific: ignore (RFC 7512 2.3)
			}
			return fmt.Errorf("%w: unknown path attribute %q", ErrBadURI, name)
		}
		if _, dup := into[name]; dup {
			return fmt.Errorf("%w: attribute %s given twice", ErrBadURI, name)
		}
		into[name] = val
	}
	return nil
}

// TokenLabel returns the token= attribute.
func (u *URI) TokenLabel() string { return u.Path["token"] }

// Serial returns the serial= attribute.
func (u *URI) Serial() string { return u.Path["serial"] }

// Object returns the object= attribute (the key's CKA_LABEL).
func (u *URI) Object() string { return u.Path["object"] }

// ID returns the decoded id= attribute (the key's CKA_ID).
func (u *URI) ID() []byte {
	v, ok := u.Path["id"]
	if !ok {
		return nil
	}
	return []byte(v)
}

// ModulePath returns the module-path= query attribute.
func (u *URI) ModulePath() string { return u.Query["module-path"] }

// PIN reads the PIN named by the pin-source query attribute: a file path or
// a file: URI. It returns ok=false when there is no pin-source; a
// pin-source that cannot be read is an error, never an empty PIN.
func (u *URI) PIN() (pin string, ok bool, err error) {
	src, ok := u.Query["pin-source"]
	if !ok {
		return "", false, nil
	}
	path := src
	if strings.HasPrefix(src, "file:") {
		fu, err := url.Parse(src)
		if err != nil {
			return "", true, fmt.Errorf("%w: pin-source: %v", ErrBadURI, err)
		}
		path = fu.Path
		if path == "" {
			path = fu.Opaque
		}
	} else if strings.Contains(src, ":") && !strings.HasPrefix(src, "/") {
		return "", true, fmt.Errorf("%w: pin-source scheme not supported (use a file path or file: uri)", ErrBadURI)
	}
	pin, err = ReadPINFile(path)
	if err != nil {
		return "", true, err
	}
	return pin, true, nil
}
