package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state/sqlite"
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
	labels := map[envelope.KeyID]string{}
	if c.Bool("labels") {
		if labels, err = tokenLabels(c); err != nil {
			return err
		}
	}
	out := describe(info, trustedNames(c), labels)
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	printInspect(c.App.Writer, out)
	return nil
}

// describe is what inspect shows of info, with the trusted senders'
// names and the token's key labels.
func describe(info *envelope.Info, names, labels map[envelope.KeyID]string) *inspectJSON {
	out := &inspectJSON{
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
	for _, s := range info.Stanzas {
		out.Recipients = append(out.Recipients, recipientJSON{KeyID: s.KeyID.String(), Algorithm: s.Alg, OAEPHash: s.OAEPHash, Label: labels[s.KeyID]})
	}
	if s := info.Sender; s != nil {
		out.Sender = &senderJSON{KeyID: s.KeyID.String(), Name: names[s.KeyID], Signature: s.SigAlg.String(), StreamID: s.StreamID, Serial: s.Serial,
			Timestamp: s.Time.UTC().Format(time.RFC3339Nano), TimestampMS: uint64(s.Time.UnixMilli()), Unverified: true}
	}
	if p := info.PreviousSender; p != nil {
		out.PreviousSender = &senderJSON{KeyID: p.KeyID.String(), Name: names[p.KeyID], StreamID: p.StreamID, Serial: p.Serial,
			Timestamp: p.Time.UTC().Format(time.RFC3339Nano), TimestampMS: uint64(p.Time.UnixMilli()), Unverified: true}
	}
	for _, e := range info.Extensions {
		out.Extensions = append(out.Extensions, fmt.Sprintf("%#04x", e))
	}
	return out
}

// tokenLabels maps the key ids of the token's keys to their labels.
func tokenLabels(c *cli.Context) (map[envelope.KeyID]string, error) {
	kr := newKeyring(c)
	defer kr.Close()
	return kr.Labels()
}

// printInspect prints out for people.
func printInspect(w io.Writer, out *inspectJSON) {
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
	if out.Sender != nil {
		printSender(w, "sender (not verified by inspect)", out.Sender)
	} else {
		fmt.Fprintln(w, "sender: none (anonymous)")
	}
	if out.PreviousSender != nil {
		printSender(w, "rewrapped from", out.PreviousSender)
	}
}

func printSender(w io.Writer, what string, s *senderJSON) {
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
	st, err := sqlite.Open(dir)
	if err != nil {
		return names
	}
	defer st.Close()
	ts, err := st.ListTrusted(context.Background())
	if err != nil {
		return names
	}
	for _, t := range ts {
		names[t.KeyID] = t.Name
	}
	return names
}
