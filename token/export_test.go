package token

import "github.com/miekg/pkcs11"

// CountObjects counts every object the logged-in token shows, session
// objects included, for tests that check nothing is left behind.
func (t *Token) CountObjects() (int, error) {
	var n int
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		hs, err := t.findObjects(sh, nil)
		n = len(hs)
		return err
	})
	return n, err
}
