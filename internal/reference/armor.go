package reference

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Armor is the ASCII armor of a binary envelope (section 7).
func Armor(bin []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(bin)
	var b strings.Builder
	b.WriteString(ArmorBegin + "\n")
	for len(enc) > 0 {
		n := min(ArmorLine, len(enc))
		b.WriteString(enc[:n] + "\n")
		enc = enc[n:]
	}
	b.WriteString(ArmorEnd + "\n")
	return []byte(b.String())
}

func isB64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// Dearmor decodes the armor strictly: the one armored form of a binary
// envelope, nothing else.
func Dearmor(env []byte) ([]byte, error) {
	s := string(env)
	begin, end := ArmorBegin+"\n", ArmorEnd+"\n"
	if !strings.HasPrefix(s, begin) {
		return nil, errors.New("reference: armor: bad begin line")
	}
	s = s[len(begin):]
	if !strings.HasSuffix(s, end) {
		return nil, errors.New("reference: armor: missing end line, or data after it")
	}
	s = s[:len(s)-len(end)]
	if s == "" || s[len(s)-1] != '\n' {
		return nil, errors.New("reference: armor: no base64 lines")
	}
	lines := strings.Split(s[:len(s)-1], "\n")
	var b64 strings.Builder
	for i, line := range lines {
		last := i == len(lines)-1
		if !last && len(line) != ArmorLine {
			return nil, fmt.Errorf("reference: armor: line %d has %d characters", i, len(line))
		}
		if last && (len(line) < 1 || len(line) > ArmorLine) {
			return nil, fmt.Errorf("reference: armor: last line has %d characters", len(line))
		}
		for j := 0; j < len(line); j++ {
			if !isB64(line[j]) && !(line[j] == '=' && last) {
				return nil, fmt.Errorf("reference: armor: byte 0x%02x on line %d", line[j], i)
			}
		}
		b64.WriteString(line)
	}
	// Strict: '=' padding required, non-zero padding bits refused.
	bin, err := base64.StdEncoding.Strict().DecodeString(b64.String())
	if err != nil {
		return nil, fmt.Errorf("reference: armor: %v", err)
	}
	return bin, nil
}

// DearmorPrefix decodes the armored body as far as it is well formed.
func DearmorPrefix(env []byte) []byte {
	lines := strings.Split(string(env), "\n")
	var out []byte
	for _, l := range lines[1:] {
		b, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(l) == 0 {
			break
		}
		out = append(out, b...)
	}
	return out
}

// Binary returns env's binary form, dearmoring it if it is armored.
func Binary(env []byte) ([]byte, error) {
	if bytes.HasPrefix(env, []byte(ArmorBegin)) {
		return Dearmor(env)
	}
	return env, nil
}
