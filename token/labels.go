package token

import (
	"slices"

	"github.com/miekg/pkcs11"
)

// PublicLabels returns the labels of the objects on the token cfg selects
// that can be read without logging in — public-key objects, certificates,
// and private keys where the token shows them — sorted, each once. No
// PIN is asked for or sent (cfg.PIN and cfg.Prompt are not used): it is
// for shell completion. A key pair whose objects are all private is
// missing.
func PublicLabels(cfg Config) ([]string, error) {
	m, _, info, err := selectToken(cfg)
	if err != nil {
		return nil, err
	}
	defer m.close()
	sh, err := m.ctx.OpenSession(info.Slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, p11err("C_OpenSession", err)
	}
	defer m.ctx.CloseSession(sh)
	t := &Token{m: m, info: info}
	var labels []string
	for _, class := range []uint{pkcs11.CKO_PUBLIC_KEY, pkcs11.CKO_CERTIFICATE, pkcs11.CKO_PRIVATE_KEY} {
		hs, err := t.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)})
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			a, err := m.ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
			if err == nil && len(a) == 1 && len(a[0].Value) > 0 {
				labels = append(labels, string(a[0].Value))
			}
		}
	}
	slices.Sort(labels)
	return slices.Compact(labels), nil
}
