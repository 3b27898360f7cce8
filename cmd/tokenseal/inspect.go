package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/urfave/cli/v2"
)

var inspectCommand = &cli.Command{
	Name:      "inspect",
	Usage:     "describe an envelope without any token or PIN: recipients, sender, serial, timestamp, sizes",
	UsageText: "tokenseal inspect [--json] [--labels] [IN]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.BoolFlag{Name: "labels", Usage: "also look the recipients' key ids up on the token, to show their labels (needs the PIN)"},
		flagStateDir,
	},
	Action: inspect,
}

// inspectJSON is the output of `inspect --json`.
type inspectJSON struct {
	Format         string          `json:"format"` // "binary" or "armor"
	Version        int             `json:"version"`
	ChunkSize      int             `json:"chunk_size"`
	HeaderBytes    int             `json:"header_bytes"`
	PayloadBytes   int64           `json:"payload_bytes"`
	PlaintextBytes *int64          `json:"plaintext_bytes"` // null when the payload length is not valid
	Recipients     []recipientJSON `json:"recipients"`
	Sender         *senderJSON     `json:"sender"` // null when anonymous
	PreviousSender *senderJSON     `json:"previous_sender,omitempty"`
	Extensions     []string        `json:"other_extensions,omitempty"`
}

type recipientJSON struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	OAEPHash  string `json:"oaep_hash,omitempty"`
	Label     string `json:"label,omitempty"`
}

type senderJSON struct {
	KeyID       string `json:"key_id"`
	Name        string `json:"trusted_name,omitempty"`
	Signature   string `json:"signature_algorithm,omitempty"`
	StreamID    uint64 `json:"stream_id"`
	Serial      uint64 `json:"serial"`
	Timestamp   string `json:"timestamp"`
	TimestampMS uint64 `json:"timestamp_ms"`
	Unverified  bool   `json:"unverified"`
}

func inspect(c *cli.Context) error {
	if c.NArg() > 1 {
		return usageErrorf("inspect takes at most one input")
	}
	src, err := openInput(c.App.Reader, c.Args().First())
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := envelope.Inspect(src)
	if err != nil {
		return err
	}
	names := trustedNames(c)
	out := inspectJSON{
		Format: "binary", Version: info.Version, ChunkSize: info.ChunkSize,
		HeaderBytes: info.HeaderLen, PayloadBytes: info.PayloadLen,
	}
	if info.Armored {
		out.Format = "armor"
	}
	if info.PlaintextLen >= 0 {
		n := info.PlaintextLen
		out.PlaintextBytes = &n
	}
	labels := map[envelope.KeyID]string{}
	if c.Bool("labels") {
		kr := newKeyring(c)
		defer kr.Close()
		var err error
		if labels, err = kr.Labels(); err != nil {
			return err
		}
	}
	for _, s := range info.Stanzas {
		out.Recipients = append(out.Recipients, recipientJSON{KeyID: s.KeyID.String(), Algorithm: s.Alg, OAEPHash: s.OAEPHash, Label: labels[s.KeyID]})
	}
	if s := info.Sender; s != nil {
		alg := "ECDSA-P256-SHA256"
		if s.SigAlg == 2 {
			alg = "RSA-PSS-SHA256"
		}
		id := envelope.KeyID(s.KeyID)
		out.Sender = &senderJSON{KeyID: id.String(), Name: names[id], Signature: alg, StreamID: s.StreamID, Serial: s.Serial,
			Timestamp: time.UnixMilli(int64(s.Timestamp)).UTC().Format(time.RFC3339Nano), TimestampMS: s.Timestamp, Unverified: true}
	}
	if p := info.PreviousSender; p != nil {
		id := envelope.KeyID(p.KeyID)
		out.PreviousSender = &senderJSON{KeyID: id.String(), Name: names[id], StreamID: p.StreamID, Serial: p.Serial,
			Timestamp: time.UnixMilli(int64(p.Timestamp)).UTC().Format(time.RFC3339Nano), TimestampMS: p.Timestamp, Unverified: true}
	}
	for _, e := range info.Extensions {
		out.Extensions = append(out.Extensions, fmt.Sprintf("%#04x", e))
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "tokenseal envelope, version %d, %s, chunks of %d bytes\n", out.Version, out.Format, out.ChunkSize)
	pt := "invalid length"
	if out.PlaintextBytes != nil {
		pt = fmt.Sprintf("%d bytes", *out.PlaintextBytes)
	}
	fmt.Fprintf(w, "header %d bytes, payload %d bytes, plaintext %s\n", out.HeaderBytes, out.PayloadBytes, pt)
	fmt.Fprintf(w, "recipients (%d):\n", len(out.Recipients))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range out.Recipients {
		alg := r.Algorithm
		if r.OAEPHash != "" {
			alg += " " + r.OAEPHash
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.KeyID, alg, r.Label)
	}
	tw.Flush()
	printSender := func(what string, s *senderJSON) {
		name := s.Name
		if name == "" {
			name = "not a trusted sender"
		}
		fmt.Fprintf(w, "%s: %s (%s)\n  stream %d, serial %d, timestamp %s", what, s.KeyID, name, s.StreamID, s.Serial, s.Timestamp)
		if s.Signature != "" {
			fmt.Fprintf(w, ", %s", s.Signature)
		}
		fmt.Fprintln(w)
	}
	if out.Sender != nil {
		printSender("sender (not verified by inspect)", out.Sender)
	} else {
		fmt.Fprintln(w, "sender: none (anonymous)")
	}
	if out.PreviousSender != nil {
		printSender("rewrapped from", out.PreviousSender)
	}
	return nil
}

// trustedNames maps key ids to trusted names, if a state directory
// exists; inspect never creates one.
func trustedNames(c *cli.Context) map[envelope.KeyID]string {
	names := map[envelope.KeyID]string{}
	dir, err := stateDir(c)
	if err != nil {
		return names
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); errors.Is(err, os.ErrNotExist) {
		return names
	}
	st, err := state.Open(dir)
	if err != nil {
		return names
	}
	defer st.Close()
	ts, err := st.ListTrusted(context.Background())
	if err != nil {
		return names
	}
	for _, t := range ts {
		names[envelope.KeyID(t.KeyID)] = t.Name
	}
	return names
}
