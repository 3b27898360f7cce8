package envelope

import (
	"bufio"
	"fmt"
	"io"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/internal/stream"
)

// Info is what an envelope shows without any key: nothing in it is
// authenticated, since checking needs the file key.
type Info struct {
	Armored        bool
	Version        int
	ChunkSize      int
	HeaderLen      int // bytes of the binary header, MAC included
	Stanzas        []StanzaInfo
	Sender         *SenderInfo         // nil for an anonymous envelope
	PreviousSender *PreviousSenderInfo // set on a rewrapped envelope
	Extensions     []uint16            // other non-critical extensions present
	PayloadLen     int64               // bytes of payload (ciphertext and tags)
	PlaintextLen   int64               // -1 when the payload length is not a valid one
	TrailerLen     int
}

// StanzaInfo describes one recipient stanza.
type StanzaInfo struct {
	Type     uint8
	Alg      string // "RSA-OAEP", "ECDH-P256", "ECDH-P384" or "unknown"
	KeyID    KeyID
	OAEPHash string // "SHA-1" or "SHA-256" for RSA-OAEP stanzas
}

// Inspect parses src's header and reads the rest to measure it. It needs
// no key and verifies nothing.
func Inspect(src io.Reader) (*Info, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	peek, _ := br.Peek(len(format.ArmorBegin))
	var in io.Reader = br
	info := &Info{Armored: format.IsArmored(peek)}
	if info.Armored {
		in = format.NewArmoredReader(br)
	}
	h, raw, err := format.ReadHeader(in)
	if err != nil {
		return nil, wrapReject(err)
	}
	info.Version = int(h.Version)
	info.ChunkSize = 1 << h.ChunkLog2
	info.HeaderLen = len(raw)
	info.Sender = senderInfo(h.Sender)
	info.TrailerLen = h.TrailerLen()
	prev, err := h.PreviousSender()
	if err != nil {
		return nil, wrapReject(err)
	}
	info.PreviousSender = previousSenderInfo(prev)
	for _, e := range h.Unknown {
		if e.Type != format.ExtPreviousSender {
			info.Extensions = append(info.Extensions, e.Type)
		}
	}
	for _, s := range h.Stanzas {
		si := StanzaInfo{Type: s.Type, KeyID: s.KeyID, Alg: "unknown"}
		switch s.Type {
		case format.StanzaRSAOAEP:
			si.Alg = "RSA-OAEP"
			if len(s.Body) > 0 {
				switch s.Body[0] {
				case oaepSHA1:
					si.OAEPHash = "SHA-1"
				case oaepSHA256:
					si.OAEPHash = "SHA-256"
				default:
					si.OAEPHash = fmt.Sprintf("unknown (%d)", s.Body[0])
				}
			}
		case format.StanzaECDHP256:
			si.Alg = "ECDH-P256"
		case format.StanzaECDHP384:
			si.Alg = "ECDH-P384"
		}
		info.Stanzas = append(info.Stanzas, si)
	}
	n, err := io.Copy(io.Discard, in)
	if err != nil {
		return nil, wrapReject(err)
	}
	if n < int64(info.TrailerLen) {
		return nil, rejected("envelope truncated: the signature trailer is incomplete")
	}
	info.PayloadLen = n - int64(info.TrailerLen)
	info.PlaintextLen = plaintextLen(info.PayloadLen)
	return info, nil
}

// plaintextLen is the plaintext length that a valid payload of n bytes
// carries, or -1.
func plaintextLen(n int64) int64 {
	const enc, chunk = stream.EncChunkSize, stream.ChunkSize
	full, rest := n/enc, n%enc
	switch {
	case n < stream.Overhead:
		return -1
	case rest == 0:
		return full * chunk
	case rest < stream.Overhead, rest == stream.Overhead && full > 0:
		return -1
	}
	return full*chunk + rest - stream.Overhead
}
