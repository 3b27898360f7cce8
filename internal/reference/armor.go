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
	bin, err := dearmorLines(env)
	if err != nil {
		return nil, err
	}
	return bin, nil
}

// dearmorLines decodes the armor line by line, strictly, and returns the
// bytes of the lines before the first deviation with that deviation (nil
// when there is none). A 64-character line is 48 bytes on its own, so
// each line decodes alone.
func dearmorLines(env []byte) ([]byte, error) {
	s := string(env)
	begin, end := ArmorBegin+"\n", ArmorEnd+"\n"
	if !strings.HasPrefix(s, begin) {
		return nil, errors.New("reference: armor: bad begin line")
	}
	lines := strings.SplitAfter(s[len(begin):], "\n")
	var bin []byte
	for i, line := range lines {
		if line == end {
			if i == 0 {
				return bin, errors.New("reference: armor: no base64 lines")
			}
			if i != len(lines)-2 || lines[i+1] != "" {
				return bin, errors.New("reference: armor: data after the end line")
			}
			return bin, nil
		}
		if !strings.HasSuffix(line, "\n") {
			return bin, errors.New("reference: armor: missing end line")
		}
		b, final, err := armorLine(strings.TrimSuffix(line, "\n"), i)
		if err != nil {
			return bin, err
		}
		bin = append(bin, b...)
		if final && (i+1 >= len(lines) || lines[i+1] != end) {
			return bin, errors.New("reference: armor: a line after the final short line, or no end line")
		}
	}
	return bin, errors.New("reference: armor: missing end line")
}

// armorLine decodes body line i, and says whether it must be the last.
func armorLine(line string, i int) ([]byte, bool, error) {
	if len(line) < 1 || len(line) > ArmorLine {
		return nil, false, fmt.Errorf("reference: armor: line %d has %d characters", i, len(line))
	}
	final := len(line) < ArmorLine || strings.HasSuffix(line, "=")
	for j := 0; j < len(line); j++ {
		if !isB64(line[j]) && line[j] != '=' {
			return nil, false, fmt.Errorf("reference: armor: byte 0x%02x on line %d", line[j], i)
		}
	}
	// Strict: '=' padding required, non-zero padding bits refused.
	b, err := base64.StdEncoding.Strict().DecodeString(line)
	if err != nil {
		return nil, false, fmt.Errorf("reference: armor: line %d: %v", i, err)
	}
	return b, final, nil
}

// binaryPrefix is env's binary form, dearmored if armored; for broken
// armor, the bytes before the break and the error.
func binaryPrefix(env []byte) ([]byte, error) {
	if bytes.HasPrefix(env, []byte(ArmorBegin)) {
		return dearmorLines(env)
	}
	return env, nil
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
