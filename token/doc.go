// Package token binds tokenseal to a PKCS#11 token. It is the only package
// that imports miekg/pkcs11.
//
// # Opening a token
//
// [Open] loads a module (given, or found by [FindModule]), resolves a
// label, serial, slot or RFC 7512 URI ([ParseURI]) to exactly one token
// before any PIN is asked for, checks the PIN against the token
// ([CheckPIN]), and logs in once. The returned [*Token] owns the module
// until [Token.Close].
//
// # Keys
//
// [Token.Keys] reads the token once and returns every key pair tokenseal
// can use, including keys other tools made: RSA public keys are read from
// the private key object, others from the public-key object or X.509
// certificate with the same CKA_ID, and [Key.Check] proves those belong
// to the private key. [Token.GenerateKey] makes key pairs with a template
// chosen from what the token reports ([Token.CanGenerate]) and CKA_ID =
// SHA-256 of the public key's DER SubjectPublicKeyInfo. A [*Key] undoes
// RSA-OAEP ([Key.DecryptOAEP]) by one path chosen once by a probe
// ([Key.OAEPPath]), computes ECDH ([Key.ECDH]) and signs ([Key.Signer]).
//
// # Diagnostics and PIN changes
//
// [Diagnose] reports what a module and token offer tokenseal, trying each
// mechanism for real after a login and leaving no object behind;
// [ChangePIN] changes the user PIN with C_SetPIN; [InitToken] sets up a
// new token.
//
// # Errors
//
// PKCS#11 failures are [*Error] values naming the CKR_ constant.
// Conditions are sentinels ([ErrModuleNotFound], [ErrTokenNotFound],
// [ErrKeyNotFound], [ErrLoginFailed], ...) that all match [ErrToken]. An
// unwrap or derive of data from outside that fails is [ErrUnwrapFailed]
// instead, with one fixed message whatever the token said.
package token
