package cms

import (
	"fmt"
	"io"
)

// Info is what a CMS message shows without any key. Nothing in it is
// authenticated. Whether the content is signed is not in it: that is
// inside the encryption.
type Info struct {
	Form Form
	// Indefinite is true when the message uses indefinite lengths (it was
	// written streaming, as Seal and `openssl cms -stream` do).
	Indefinite bool
	// ContentType is "authEnvelopedData" or "envelopedData".
	ContentType string
	Version     int
	// Authenticated is true for AuthEnvelopedData: the content carries a
	// GCM tag. EnvelopedData's content is not authenticated.
	Authenticated bool
	Recipients    []RecipientInfo
	// ContentAlgorithm is "AES-256-GCM", "AES-256-CBC", ...
	ContentAlgorithm string
	// EncryptedContentType is the declared type of the encrypted content,
	// "data" (Seal's, signed or not) or "signedData".
	EncryptedContentType string
	// ContentLength is the number of encrypted content bytes.
	ContentLength int64
}

// RecipientInfo describes one recipient: one per KeyTransRecipientInfo,
// one per RecipientEncryptedKey of a KeyAgreeRecipientInfo.
type RecipientInfo struct {
	// Type is "KeyTransRecipientInfo", "KeyAgreeRecipientInfo",
	// "KEKRecipientInfo", "PasswordRecipientInfo" or "OtherRecipientInfo".
	Type string
	// ID names the recipient; nil for the types this package does not
	// read (KEK, password, other).
	ID *RecipientID
	// Algorithm is the key management algorithm, e.g. "RSAES-OAEP
	// SHA-256", "RSA PKCS#1 v1.5 (refused)", "ECDH
	// dhSinglePass-stdDH-sha256kdf-scheme, AES-256 key wrap".
	Algorithm string
}

// Inspect reads a CMS message (any form Open reads) to its end and
// describes it. It needs no key and verifies nothing but the structure.
func Inspect(src io.Reader) (*Info, error) {
	m, err := readMessage(src)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(io.Discard, m.content)
	if err != nil {
		return nil, err
	}
	if err := m.readTrailer(); err != nil {
		return nil, err
	}
	info := &Info{
		Form:                 m.in.form,
		Indefinite:           m.b.indef,
		ContentType:          m.typ.String(),
		Version:              int(m.version),
		Authenticated:        m.authenticated(),
		ContentAlgorithm:     m.alg.String(),
		EncryptedContentType: m.encType.String(),
		ContentLength:        n,
	}
	for _, ri := range m.ris {
		info.Recipients = append(info.Recipients, describe(ri)...)
	}
	return info, nil
}

func describe(ri *recipientInfo) []RecipientInfo {
	typ := kindName[ri.kind]
	switch ri.kind {
	case kindKTRI:
		rid := ri.rid
		return []RecipientInfo{{Type: typ, ID: &rid, Algorithm: ktriAlgorithm(ri)}}
	case kindKARI:
		alg := "ECDH " + ri.keyAlg.oid.String()
		if ri.wrapAlg != "" {
			alg += ", " + ri.wrapAlg.String()
		}
		var out []RecipientInfo
		for _, k := range ri.keys {
			rid := k.rid
			out = append(out, RecipientInfo{Type: typ, ID: &rid, Algorithm: alg})
		}
		return out
	}
	return []RecipientInfo{{Type: typ}}
}

func ktriAlgorithm(ri *recipientInfo) string {
	switch ri.keyAlg.oid {
	case oidRSAEncryption:
		return "RSA PKCS#1 v1.5 (refused)"
	case oidRSAESOAEP:
		h, ok := parseOAEPParams(ri.keyAlg.params)
		if !ok {
			return "RSAES-OAEP (unsupported parameters)"
		}
		return fmt.Sprintf("RSAES-OAEP %s", oidByHash[h].String())
	}
	return ri.keyAlg.oid.String()
}
