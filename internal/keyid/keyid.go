// Package keyid is tokenseal's one key identifier: SHA-256 of a public
// key's DER SubjectPublicKeyInfo (envelope/FORMAT.md, sections 2.3 and
// 4). The envelope format names recipients and senders by it, the
// token package sets it as the CKA_ID of the keys it generates, and the
// state keeps trusted senders under it; each calls this function, so
// that none of them imports another to compute it.
package keyid

import "crypto/sha256"

// OfSPKI is the key identifier of the key whose DER
// SubjectPublicKeyInfo is spki.
func OfSPKI(spki []byte) [32]byte { return sha256.Sum256(spki) }
