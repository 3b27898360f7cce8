package cms

import (
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// oid is the content octets of a DER OBJECT IDENTIFIER (without tag and
// length), kept as a string so that it compares with == and keys maps.
// Every OID this package reads is compared in this form, so arcs wider
// than an int (the 2.25 UUID arc below) need no special case.
type oid string

func mkOID(arcs ...int) oid {
	der, err := asn1.Marshal(asn1.ObjectIdentifier(arcs))
	if err != nil {
		panic(err) // only called with constants
	}
	return oid(der[2:])
}

func hexOID(h string) oid {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	return oid(b)
}

var (
	// Content types (RFC 5652 section 14, RFC 5083 section 1).
	oidData                = mkOID(1, 2, 840, 113549, 1, 7, 1)
	oidSignedData          = mkOID(1, 2, 840, 113549, 1, 7, 2)
	oidEnvelopedData       = mkOID(1, 2, 840, 113549, 1, 7, 3)
	oidAuthEnvelopedData   = mkOID(1, 2, 840, 113549, 1, 9, 16, 1, 23)
	oidAttrContentType     = mkOID(1, 2, 840, 113549, 1, 9, 3)
	oidAttrMessageDigest   = mkOID(1, 2, 840, 113549, 1, 9, 4)
	oidAttrSigningTime     = mkOID(1, 2, 840, 113549, 1, 9, 5)
	oidRSAEncryption       = mkOID(1, 2, 840, 113549, 1, 1, 1)
	oidRSAESOAEP           = mkOID(1, 2, 840, 113549, 1, 1, 7)
	oidMGF1                = mkOID(1, 2, 840, 113549, 1, 1, 8)
	oidPSpecified          = mkOID(1, 2, 840, 113549, 1, 1, 9)
	oidRSASSAPSS           = mkOID(1, 2, 840, 113549, 1, 1, 10)
	oidSHA1                = mkOID(1, 3, 14, 3, 2, 26)
	oidSHA224              = mkOID(2, 16, 840, 1, 101, 3, 4, 2, 4)
	oidSHA256              = mkOID(2, 16, 840, 1, 101, 3, 4, 2, 1)
	oidSHA384              = mkOID(2, 16, 840, 1, 101, 3, 4, 2, 2)
	oidSHA512              = mkOID(2, 16, 840, 1, 101, 3, 4, 2, 3)
	oidECDSAWithSHA256     = mkOID(1, 2, 840, 10045, 4, 3, 2)
	oidECPublicKey         = mkOID(1, 2, 840, 10045, 2, 1)
	oidP256                = mkOID(1, 2, 840, 10045, 3, 1, 7)
	oidP384                = mkOID(1, 3, 132, 0, 34)
	oidAES128CBC           = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 2)
	oidAES192CBC           = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 22)
	oidAES256CBC           = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 42)
	oidAES128GCM           = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 6)
	oidAES192GCM           = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 26)
	oidAES256GCM           = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 46)
	oidAES128Wrap          = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 5)
	oidAES192Wrap          = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 25)
	oidAES256Wrap          = mkOID(2, 16, 840, 1, 101, 3, 4, 1, 45)
	oidStdDHSHA1KDF        = mkOID(1, 3, 133, 16, 840, 63, 0, 2)
	oidStdDHSHA224KDF      = mkOID(1, 3, 132, 1, 11, 0)
	oidStdDHSHA256KDF      = mkOID(1, 3, 132, 1, 11, 1)
	oidStdDHSHA384KDF      = mkOID(1, 3, 132, 1, 11, 2)
	oidStdDHSHA512KDF      = mkOID(1, 3, 132, 1, 11, 3)
	oidExtSubjectKeyID     = mkOID(2, 5, 29, 14)
	oidTokensealStamp      = hexOID("6981d8f6df90a38be28ae39db18086a9a983ef2f")
	oidSMIMECapabilities   = mkOID(1, 2, 840, 113549, 1, 9, 15)
	oidKeyPurposeEmailProt = mkOID(1, 3, 6, 1, 5, 5, 7, 3, 4)
)

// oidName names the OIDs that Inspect and error messages show.
var oidName = map[oid]string{
	oidData:              "data",
	oidSignedData:        "signedData",
	oidEnvelopedData:     "envelopedData",
	oidAuthEnvelopedData: "authEnvelopedData",
	oidRSAEncryption:     "rsaEncryption",
	oidRSAESOAEP:         "rsaesOAEP",
	oidSHA1:              "SHA-1",
	oidSHA224:            "SHA-224",
	oidSHA256:            "SHA-256",
	oidSHA384:            "SHA-384",
	oidSHA512:            "SHA-512",
	oidAES128CBC:         "AES-128-CBC",
	oidAES192CBC:         "AES-192-CBC",
	oidAES256CBC:         "AES-256-CBC",
	oidAES128GCM:         "AES-128-GCM",
	oidAES192GCM:         "AES-192-GCM",
	oidAES256GCM:         "AES-256-GCM",
	oidAES128Wrap:        "AES-128 key wrap",
	oidAES192Wrap:        "AES-192 key wrap",
	oidAES256Wrap:        "AES-256 key wrap",
	oidStdDHSHA1KDF:      "dhSinglePass-stdDH-sha1kdf-scheme",
	oidStdDHSHA224KDF:    "dhSinglePass-stdDH-sha224kdf-scheme",
	oidStdDHSHA256KDF:    "dhSinglePass-stdDH-sha256kdf-scheme",
	oidStdDHSHA384KDF:    "dhSinglePass-stdDH-sha384kdf-scheme",
	oidStdDHSHA512KDF:    "dhSinglePass-stdDH-sha512kdf-scheme",
	oidP256:              "P-256",
	oidP384:              "P-384",
}

// String returns the OID's name, or its dotted form.
func (o oid) String() string {
	if n, ok := oidName[o]; ok {
		return n
	}
	return dotted(o)
}

// dotted formats the OID in dotted decimal, arcs of any size.
func dotted(o oid) string {
	var sb strings.Builder
	arc := new(big.Int)
	first, open := true, false
	for i := 0; i < len(o); i++ {
		arc.Lsh(arc, 7)
		arc.Or(arc, big.NewInt(int64(o[i]&0x7f)))
		open = true
		if o[i]&0x80 != 0 {
			continue
		}
		if first {
			// The first subidentifier holds 40*arc1 + arc2.
			a1 := int64(2)
			if arc.IsInt64() && arc.Int64() < 80 {
				a1 = arc.Int64() / 40
			}
			fmt.Fprintf(&sb, "%d.%s", a1, new(big.Int).Sub(arc, big.NewInt(40*a1)))
			first = false
		} else {
			fmt.Fprintf(&sb, ".%s", arc)
		}
		arc.SetInt64(0)
		open = false
	}
	if open || first {
		return "invalid OID " + hex.EncodeToString([]byte(o))
	}
	return sb.String()
}
