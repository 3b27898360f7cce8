package token

import (
	"github.com/miekg/pkcs11"
)

// attrs holds the attribute values read from one object, by CKA_ type:
// code reads them by name, never by position.
type attrs map[uint][]byte

func (a attrs) has(typ uint) bool     { _, ok := a[typ]; return ok }
func (a attrs) bytes(typ uint) []byte { return a[typ] }
func (a attrs) str(typ uint) string   { return string(a[typ]) }
func (a attrs) bool(typ uint) bool    { v := a[typ]; return len(v) > 0 && v[0] != 0 }

// ulong reads a CK_ULONG, in native byte order as miekg/pkcs11 returns it.
func (a attrs) ulong(typ uint) (uint, bool) {
	b, ok := a[typ]
	if !ok || (len(b) != 8 && len(b) != 4) {
		return 0, false
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return uint(v), true
}

// readAttrs reads the attributes types of object h in one call. If the
// token refuses some of them (not defined for this object, or
// sensitive), it reads each alone and leaves out those it refuses; other
// failures are errors.
func (t *Token) readAttrs(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, types ...uint) (attrs, error) {
	tmpl := make([]*pkcs11.Attribute, len(types))
	for i, typ := range types {
		tmpl[i] = pkcs11.NewAttribute(typ, nil)
	}
	got, err := t.ctx().GetAttributeValue(sh, h, tmpl)
	if err == nil {
		a := make(attrs, len(got))
		for _, x := range got {
			a[x.Type] = x.Value
		}
		return a, nil
	}
	if !hasCode(err, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
		return nil, p11err("C_GetAttributeValue", err)
	}
	a := attrs{}
	for _, typ := range types {
		got, err := t.ctx().GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
		switch {
		case err == nil && len(got) == 1:
			a[typ] = got[0].Value
		case err == nil, hasCode(err, pkcs11.CKR_ATTRIBUTE_TYPE_INVALID, pkcs11.CKR_ATTRIBUTE_SENSITIVE):
		default:
			return nil, p11err("C_GetAttributeValue", err)
		}
	}
	return a, nil
}

// findObjects returns every object matching tmpl. FindObjectsInit is
// always paired with FindObjectsFinal.
func (t *Token) findObjects(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) (_ []pkcs11.ObjectHandle, err error) {
	if err := t.ctx().FindObjectsInit(sh, tmpl); err != nil {
		return nil, p11err("C_FindObjectsInit", err)
	}
	defer func() {
		if ferr := t.ctx().FindObjectsFinal(sh); ferr != nil && err == nil {
			err = p11err("C_FindObjectsFinal", ferr)
		}
	}()
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := t.ctx().FindObjects(sh, 64)
		if err != nil {
			return nil, p11err("C_FindObjects", err)
		}
		if len(hs) == 0 {
			return out, nil
		}
		out = append(out, hs...)
	}
}

// object is an object found on the token with the attributes read.
type object struct {
	h pkcs11.ObjectHandle
	a attrs
}

// objects finds every object of class and reads common, then the
// attributes typed[key type] for its key type (certificates: typed[0]).
func (t *Token) objects(sh pkcs11.SessionHandle, class uint, common []uint, typed map[uint][]uint) ([]object, error) {
	hs, err := t.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)})
	if err != nil {
		return nil, err
	}
	out := make([]object, 0, len(hs))
	for _, h := range hs {
		a, err := t.readAttrs(sh, h, common...)
		if err != nil {
			return nil, err
		}
		kt, _ := a.ulong(pkcs11.CKA_KEY_TYPE)
		if more := typed[kt]; len(more) > 0 {
			b, err := t.readAttrs(sh, h, more...)
			if err != nil {
				return nil, err
			}
			for k, v := range b {
				a[k] = v
			}
		}
		out = append(out, object{h, a})
	}
	return out, nil
}
