// Package token binds tokenseal to a PKCS#11 token. It is the only package
// that imports miekg/pkcs11 and crypto11.
//
// # Opening a token
//
// [Open] loads a module (given, or found by [FindModule]), selects a token
// by label, serial or RFC 7512 URI ([ParseURI]), and logs in once. The
// returned [*Token] owns the module until [Token.Close].
//
// # Keys
//
// [Token.GenerateKey] makes key pairs with explicit attribute sets and
// CKA_ID = SHA-256 of the public key's DER SubjectPublicKeyInfo ([KeyID]).
// A [*Key] undoes RSA-OAEP ([Key.DecryptOAEP]) or computes ECDH
// ([Key.ECDH]) on the token, choosing what the token really supports
// ([Token.MechanismInfo]), and signs through [Key.Signer].
//
// # Diagnostics and PIN changes
//
// [Diagnose] reports what a module and token offer tokenseal, trying each
// mechanism for real after a login and leaving no object behind;
// [ChangePIN] changes the user PIN with C_SetPIN.
//
// # Errors
//
// PKCS#11 failures are [*Error] values naming the CKR_ constant.
// Conditions are sentinels ([ErrModuleNotFound], [ErrTokenNotFound],
// [ErrKeyNotFound], [ErrLoginFailed], ...) that all match [ErrToken];
// a wrapped key that is not addressed to the key, or is corrupted, is
// [ErrUnwrapFailed] instead.
package token
