package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state/backend"
	"github.com/urfave/cli/v2"
)

var inspectCommand = &cli.Command{
	Name:      "inspect",
	Usage:     "describe an envelope or CMS message without any token or PIN: recipients, sender, serial, timestamp, sizes",
	UsageText: "tokenseal inspect [--json] [--labels] [IN]",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.BoolFlag{Name: "labels", Usage: "also look the recipients' key ids up on the token, to show their labels (needs the PIN)"},
		flagStateDir,
		flagStateURL,
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
	Label     string `json:"label,omitempty"`        // the local key's label (--labels)
	Name      string `json:"trusted_name,omitempty"` // the trusted sender with this key
}

type senderJSON struct {
	KeyID       string `json:"key_id"`
	Name        string `json:"trusted_name,omitempty"`
	Label       string `json:"label,omitempty"` // a key on your token (--labels), trusted without trust add
	Signature   string `json:"signature_algorithm,omitempty"`
	StreamID    uint64 `json:"stream_id"`
	Serial      uint64 `json:"serial"`
	Timestamp   string `json:"timestamp"` // RFC 3339
	TimestampMS uint64 `json:"timestamp_ms"`
	// ClaimedBy, on a previous sender, is the key id of the envelope's
	// signer, whose claim it is.
	ClaimedBy  string `json:"claimed_by,omitempty"`
	Unverified bool   `json:"unverified"`
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
	in, isCMS := peekCMS(src)
	if isCMS {
		return inspectCMS(c, in)
	}
	info, err := envelope.Inspect(in)
	if err != nil {
		return err
	}
	labels := map[envelope.KeyID]string{}
	if c.Bool("labels") {
		if labels, err = tokenLabels(c); err != nil {
			return err
		}
	}
	names, err := trustedNames(c)
	if err != nil {
		return err
	}
	out := describe(info, names, labels)
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
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
		out.Recipients = append(out.Recipients, recipientJSON{KeyID: s.KeyID.String(), Algorithm: s.Alg, OAEPHash: s.OAEPHash,
			Label: labels[s.KeyID], Name: names[s.KeyID]})
	}
	if s := info.Sender; s != nil {
		out.Sender = &senderJSON{KeyID: s.KeyID.String(), Name: names[s.KeyID], Label: labels[s.KeyID], Signature: s.SigAlg.String(), StreamID: s.StreamID, Serial: s.Serial, Unverified: true}
		out.Sender.setTime(s.Time)
	}
	if p := info.PreviousSender; p != nil && out.Sender != nil {
		out.PreviousSender = &senderJSON{KeyID: p.KeyID.String(), Name: names[p.KeyID], Label: labels[p.KeyID], StreamID: p.StreamID, Serial: p.Serial,
			ClaimedBy: out.Sender.KeyID, Unverified: true}
		out.PreviousSender.setTime(p.Time)
	}
	for _, e := range info.Extensions {
		out.Extensions = append(out.Extensions, fmt.Sprintf("%#04x", e))
	}
	return out
}

// setTime sets the timestamp fields from t. The envelope package refuses
// a header whose timestamps no clock gives (FORMAT.md 2.3, 2.4), so t is
// between 1970 and the year 9999.
func (s *senderJSON) setTime(t time.Time) {
	s.TimestampMS = uint64(t.UnixMilli())
	s.Timestamp = t.UTC().Format(time.RFC3339Nano)
}

// tokenLabels maps the key ids of the token's keys to their labels.
func tokenLabels(c *cli.Context) (map[envelope.KeyID]string, error) {
	kr := newKeyring(c)
	defer kr.Close()
	return kr.Labels()
}

// printInspect prints out for people. Labels and names are printed
// escaped: a label is whatever the token holds.
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
		var known []string
		if r.Label != "" {
			known = append(known, printable(r.Label))
		}
		if r.Name != "" {
			known = append(known, "trusted sender "+printable(r.Name))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.KeyID, alg, strings.Join(known, ", "))
	}
	tw.Flush()
	if out.Sender == nil {
		fmt.Fprintln(w, "sender: none (anonymous)")
		return
	}
	printSender(w, "sender (not verified by inspect)", out.Sender)
	if p := out.PreviousSender; p != nil {
		printSender(w, "previous sender (claimed by the signer, unverified)", p)
	}
}

func printSender(w io.Writer, what string, s *senderJSON) {
	fmt.Fprintf(w, "%s: %s (%s)\n  stream %d, serial %d, timestamp %s", what, s.KeyID, s.who(), s.StreamID, s.Serial, s.Timestamp)
	if s.Signature != "" {
		fmt.Fprintf(w, ", %s", s.Signature)
	}
	fmt.Fprintln(w)
}

// who names the sender for people: its trusted name (printed alone, as
// always), its label on the user's own token (trusted without trust
// add), or neither.
func (s *senderJSON) who() string {
	var known []string
	if s.Name != "" {
		known = append(known, printable(s.Name))
	}
	if s.Label != "" {
		known = append(known, "your token's key "+printable(s.Label))
	}
	if len(known) == 0 {
		return "not a trusted sender; --labels also looks on your token"
	}
	return strings.Join(known, ", ")
}

// trustedNames maps key ids to trusted names, from the store the user
// chose: --state-url, else the state directory if it exists (inspect
// never creates one). A store that cannot be read gives no names.
func trustedNames(c *cli.Context) (map[envelope.KeyID]string, error) {
	names := map[envelope.KeyID]string{}
	spec, err := stateSpec(c)
	if errors.As(err, new(*usageError)) {
		return nil, err
	}
	if err != nil {
		return names, nil
	}
	if !backend.IsURL(spec) {
		if _, err := os.Lstat(filepath.Join(spec, "state.db")); err != nil {
			return names, nil
		}
	}
	st, err := backend.Open(context.Background(), spec)
	if err != nil {
		slog.Debug("no trusted names", "state", backend.Describe(spec), "error", err)
		return names, nil
	}
	defer st.Close()
	ts, err := st.ListTrusted(context.Background())
	if err != nil {
		slog.Debug("no trusted names", "state", backend.Describe(spec), "error", err)
		return names, nil
	}
	for _, t := range ts {
		names[t.KeyID] = t.Name
	}
	return names, nil
}
