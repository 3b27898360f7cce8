package envelope

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
)

// NewRecipient returns the recipient for a public key: RSA-OAEP with
// oaepHash for RSA keys (crypto.SHA256 when zero), ECDH for P-256 and
// P-384 keys.
func NewRecipient(pub crypto.PublicKey, oaepHash crypto.Hash) (Recipient, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if oaepHash == 0 {
			oaepHash = crypto.SHA256
		}
		return newRSARecipient(k, oaepHash)
	case *ecdsa.PublicKey:
		return newECRecipient(k)
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}

// ParseRecipient parses a recipient's key file (see [ParseKeyFile]): a
// PEM or DER public key or certificate. Its "oaep-hash" comment chooses
// the OAEP digest the recipient's token accepts; without one an RSA
// recipient gets SHA-256. A file marked "# tokenseal sender" is refused
// with an error wrapping [ErrKeyRole]: a signing key cannot open what is
// sealed to it.
func ParseRecipient(data []byte) (Recipient, error) {
	kf, err := ParseKeyFile(data)
	if err != nil {
		return nil, err
	}
	if err := kf.recipientUsage(); err != nil {
		return nil, err
	}
	if kf.Role == RoleSender {
		return nil, fmt.Errorf("%w: it is a sender's signing key (# tokenseal sender), which cannot open what is sealed to it; seal to the recipient's exchange key", ErrKeyRole)
	}
	return NewRecipient(kf.Public, kf.OAEPHash)
}

// ParseSenderKey parses a sender's key file (see [ParseKeyFile]) and
// returns its public key. A file marked "# tokenseal recipient" is
// refused with an error wrapping [ErrKeyRole]: an exchange key never
// signs envelopes.
func ParseSenderKey(data []byte) (crypto.PublicKey, error) {
	kf, err := ParseKeyFile(data)
	if err != nil {
		return nil, err
	}
	if err := kf.senderUsage(); err != nil {
		return nil, err
	}
	if kf.Role == RoleRecipient {
		return nil, fmt.Errorf("%w: it is a recipient's exchange key (# tokenseal recipient), which never signs envelopes; trust the sender's signing key", ErrKeyRole)
	}
	return kf.Public, nil
}

// ParsePublicKey parses a key file (see [ParseKeyFile]) whatever its
// role, and returns its public key.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	kf, err := ParseKeyFile(data)
	if err != nil {
		return nil, err
	}
	return kf.Public, nil
}

// recipientUsage refuses a certificate whose key usage, when it has one,
// does not let its key receive a file key.
func (kf *KeyFile) recipientUsage() error {
	if kf.certUsage == 0 {
		return nil
	}
	switch kf.Public.(type) {
	case *rsa.PublicKey:
		if kf.certUsage&(x509.KeyUsageKeyEncipherment|x509.KeyUsageDataEncipherment) == 0 {
			return errors.New("certificate's key usage does not allow key encipherment")
		}
	case *ecdsa.PublicKey:
		if kf.certUsage&x509.KeyUsageKeyAgreement == 0 {
			return errors.New("certificate's key usage does not allow key agreement")
		}
	}
	return nil
}

// senderUsage refuses a certificate whose key usage, when it has one,
// does not let its key sign.
func (kf *KeyFile) senderUsage() error {
	if kf.certUsage != 0 && kf.certUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("certificate's key usage does not allow digital signatures")
	}
	return nil
}
