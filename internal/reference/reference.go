// Package reference is a second, independent implementation of the
// tokenseal envelope format, written from envelope/FORMAT.md alone, for
// tests and the test-vector generator: a decoder that says whether
// FORMAT.md accepts some bytes, and an encoder that crafts envelopes,
// valid or broken in one chosen way.
//
// It must not import the envelope package or its internals: it checks
// the implementation, it does not repeat it. Section numbers in the
// comments are FORMAT.md's. Everything here is for tests: errors in the
// encoder, which only ever sees well-formed arguments, panic.
package reference

// Constants of FORMAT.md.
const (
	Magic     = "tokenseal"
	Version1  = 0x01     // section 6.1's signature
	Version2  = 0x02     // section 6.2's signature
	Version   = Version2 // what writers write (section 9)
	ChunkLog2 = 16
	ChunkSize = 1 << ChunkLog2 // 65536
	TagSize   = 16
	ChunkWire = ChunkSize + TagSize // a full chunk on the wire
	MaxBody   = 4 << 20             // header body limit, 4,194,304
	MaxStanza = 4096                // stanzas in one header
	MACSize   = 32
	KeySize   = 32 // the file key
	KeyIDSize = 32
	StanzaHdr = 1 + KeyIDSize + 2 // type || key_id || u16 length
	SenderLen = KeyIDSize + 1 + 2 + 8 + 8 + 8

	TypeRSA  = 0x01
	TypeP256 = 0x02
	TypeP384 = 0x03

	OAEPSHA1   = 1
	OAEPSHA256 = 2

	ExtCritical   = 0x8000
	ExtSender     = 0x8001
	ExtPrevSender = 0x0002 // section 2.4
	PrevSenderLen = KeyIDSize + 8 + 8 + 8
	MaxTimestamp  = 253402300800000 // section 2.3: 10000-01-01T00:00:00Z in ms

	SigECDSA = 1 // ECDSA P-256 with SHA-256, r || s
	SigPSS   = 2 // RSA-PSS with SHA-256, 32-byte salt

	ArmorBegin = "-----BEGIN TOKENSEAL ENVELOPE-----"
	ArmorEnd   = "-----END TOKENSEAL ENVELOPE-----"
	ArmorLine  = 64

	InfoHeader  = "tokenseal/v1 header"
	InfoPayload = "tokenseal/v1 payload"
	LabelP256   = "tokenseal/v1 ECDH-P256"
	LabelP384   = "tokenseal/v1 ECDH-P384"
	SigContext  = "tokenseal/v1 signature\x00" // section 6.1
	SigContext2 = "tokenseal/v2 signature\x00" // section 6.2
	ChunkLabel  = "tokenseal/v2 chunk\x00"     // section 6.2
)
