// Package cms writes and reads CMS (RFC 5652) encrypted messages, the
// format OpenSSL, S/MIME mail clients and Windows CryptoAPI speak, with the
// recipient's private key behind a small interface so that it can stay on
// a PKCS#11 token. docs/cms.md describes what is written and which
// readers open what.
//
// # Writing
//
// [Seal] streams a message in constant memory: AuthEnvelopedData (RFC
// 5083) with AES-256-GCM by default, EnvelopedData with AES-256-CBC with
// [SealOptions].Compat. Recipients are made by [NewCertificateRecipient]
// (named by issuerAndSerialNumber) or [NewKeyRecipient] (named by a
// subject key identifier equal to the key's tokenseal [KeyID]): RSA keys
// get RSAES-OAEP, P-256 and P-384 keys ECDH with
// dhSinglePass-stdDH-sha256kdf-scheme and AES key wrap. With
// [SealOptions].Sender the content is a SignedData (sign-then-encrypt),
// stamped with the sender's stream id and serial number ([StampOID]).
//
// # Reading
//
// [Open] detects the form (BER/DER, PEM, S/MIME), finds the recipient
// info addressed to a key a [KeyFinder] holds and recovers the content
// key through [RSAKey] or [ECDHKey]. The returned [Decrypter] then
// decrypts once, either:
//
//   - DecryptTo, into a [PendingOutput] that the caller releases only
//     after DecryptTo returned without error (DecryptTo calls its Discard
//     otherwise); or
//   - VerifyTo, which authenticates everything while copying only the
//     ciphertext to a spool, and then [Verified].DecryptFrom, for outputs
//     that cannot be taken back (standard output).
//
// AES-GCM's tag comes after the content, so this API never hands
// unauthenticated plaintext to anything but a PendingOutput. Signed
// content is returned with its verified [SenderInfo] only after the
// signature and the tag verified. Every failure to unwrap or decrypt is
// the one opaque [ErrDecrypt]; every error about the message wraps
// [ErrRejected].
//
// # Keys
//
// The package never talks to a token: [RSAKey] and [ECDHKey] have the
// method sets of envelope.RSAKey and envelope.ECDHKey, so a token key
// satisfies both. [NewIdentity] pairs a key with its certificates;
// [Identities] is a KeyFinder over such pairs. [NewSoftwareKey] wraps keys
// held in memory. [SelfSignedCertificate] and [IssueCertificate] make the
// certificates CMS recipients and signers are named by.
package cms
