package token

import "github.com/miekg/pkcs11"

// LabelInUse reports whether any object on the token (a key, a
// certificate, data, ...) has CKA_LABEL label. [Token.GenerateKey] refuses
// such a label; `key provision` asks first, so that a conflict stops it
// before anything is generated.
func (t *Token) LabelInUse(label string) (bool, error) {
	var used bool
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		var err error
		used, err = t.labelInUse(sh, label)
		return err
	})
	return used, err
}
