package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var keyProvisionCommand = &cli.Command{
	Name:      "provision",
	Usage:     "make the key pairs a JSON manifest lists (keys already there are left alone) and export their public keys",
	UsageText: "tokenseal key provision --manifest FILE [--export-dir DIR]",
	Description: "The manifest is JSON: {\"keys\": [{\"label\": \"alice\", \"type\": \"rsa-3072\", \"usage\": \"exchange\"}, ...]}.\n" +
		"The whole manifest is checked against the token before anything is generated: a key whose label\n" +
		"exists with the same type and usage is left alone; the same label with another type or usage, or\n" +
		"on an object that is not such a key pair, is a conflict and nothing is generated. One login.\n" +
		"With --export-dir, each key's public key is written to DIR/LABEL.pem as `key export` writes it.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "manifest", Usage: "read the keys to provision from the JSON `FILE`"},
		&cli.StringFlag{Name: "export-dir", Usage: "write each key's public key (PEM, as `key export`) to `DIR`/LABEL.pem, creating DIR if needed"},
	},
	Action: keyProvision,
}

// provisionManifest is the manifest format.
type provisionManifest struct {
	Keys []provisionKey `json:"keys"`
}

type provisionKey struct {
	Label string `json:"label"`
	Type  string `json:"type"`
	Usage string `json:"usage"`

	usage token.Usage
}

// manifestError is a manifest that cannot be used (exit 1).
type manifestError struct {
	file string
	msg  string
}

func (e *manifestError) Error() string { return fmt.Sprintf("manifest %s: %s", e.file, e.msg) }

// fileSafeLabel is what a label must look like to name DIR/LABEL.pem.
var fileSafeLabel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]*$`)

// readManifest reads and checks a manifest: strict JSON (unknown fields
// and trailing data refused), at least one key, known types and usages,
// each label once, and file-safe labels when they name export files.
func readManifest(path string, export bool) ([]provisionKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &manifestError{path, unwrapPathErr(err).Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m provisionManifest
	if err := dec.Decode(&m); err != nil {
		return nil, &manifestError{path, "not a valid manifest: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &manifestError{path, "data after the manifest object"}
	}
	if len(m.Keys) == 0 {
		return nil, &manifestError{path, `no keys: want {"keys": [{"label": ..., "type": ..., "usage": ...}]}`}
	}
	seen := map[string]bool{}
	for i, k := range m.Keys {
		at := fmt.Sprintf("key %d", i+1)
		if k.Label != "" {
			at = fmt.Sprintf("key %d (%q)", i+1, k.Label)
		}
		switch {
		case k.Label == "":
			return nil, &manifestError{path, at + ": no label"}
		case seen[k.Label]:
			return nil, &manifestError{path, at + ": label listed twice"}
		case !slices.Contains(token.KeyTypes, k.Type):
			return nil, &manifestError{path, fmt.Sprintf("%s: unknown type %q (want one of %s)", at, k.Type, strings.Join(token.KeyTypes, ", "))}
		case k.Usage != "exchange" && k.Usage != "sign":
			return nil, &manifestError{path, fmt.Sprintf("%s: unknown usage %q (want exchange or sign)", at, k.Usage)}
		case export && !fileSafeLabel.MatchString(k.Label):
			return nil, &manifestError{path, at + ": with --export-dir a label must be a plain file name (letters, digits, . _ @ + -, not starting with . or -)"}
		}
		seen[k.Label] = true
		m.Keys[i].usage, _ = token.ParseUsage(k.Usage)
	}
	return m.Keys, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// provisionStep is what provision does with one manifest key.
type provisionStep struct {
	want     provisionKey
	existing *token.Key // nil: to be generated
}

func keyProvision(c *cli.Context) error {
	file, dir := c.String("manifest"), c.String("export-dir")
	switch {
	case file == "":
		return usageErrorf("key provision needs --manifest FILE")
	case c.Args().Present():
		return usageErrorf("key provision takes no arguments")
	}
	want, err := readManifest(file, dir != "")
	if err != nil {
		return err
	}
	tok, err := openToken(c)
	if err != nil {
		return err
	}
	defer tok.Close()
	steps, conflicts, err := provisionPlan(tok, want)
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		// One line each, in manifest order; the last one is returned.
		last := len(conflicts) - 1
		for _, e := range conflicts[:last] {
			report(c.App.ErrWriter, e)
		}
		return fmt.Errorf("%w (nothing was generated)", conflicts[last])
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("export directory: %w", err)
		}
	}
	w := c.App.Writer
	generated, err := provisionGenerate(w, tok, steps)
	if err != nil {
		return err
	}
	if dir != "" {
		if err := provisionExport(w, dir, steps); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "provisioned %d keys: %d generated, %d unchanged\n", len(steps), generated, len(steps)-generated)
	return tok.Close()
}

// provisionPlan compares the whole manifest with the token before
// anything is generated: a key already there as asked is kept, one to
// make is checked against what the token can make, anything else is a
// conflict.
func provisionPlan(tok *token.Token, want []provisionKey) ([]provisionStep, []error, error) {
	keys, err := tok.Keys()
	if err != nil {
		return nil, nil, err
	}
	byLabel := map[string][]*token.Key{}
	for _, k := range keys {
		byLabel[k.Label] = append(byLabel[k.Label], k)
	}
	var steps []provisionStep
	var conflicts []error
	for _, w := range want {
		have := byLabel[w.Label]
		switch {
		case len(have) == 1 && have[0].Type == w.Type && have[0].Usage == w.usage:
			steps = append(steps, provisionStep{want: w, existing: have[0]})
		case len(have) == 1:
			conflicts = append(conflicts, fmt.Errorf("%w: %q is %s %s on the token, the manifest asks for %s %s",
				token.ErrKeyExists, w.Label, have[0].Type, have[0].Usage, w.Type, w.Usage))
		case len(have) > 1:
			conflicts = append(conflicts, fmt.Errorf("%w: %d key pairs on the token are labelled %q", token.ErrKeyExists, len(have), w.Label))
		default:
			used, err := tok.LabelInUse(w.Label)
			switch {
			case err != nil:
				return nil, nil, err
			case used:
				conflicts = append(conflicts, fmt.Errorf("%w: %q labels an object on the token that is not a key pair tokenseal can use", token.ErrKeyExists, w.Label))
			default:
				if err := tok.CanGenerate(w.Type, w.usage); err != nil {
					conflicts = append(conflicts, fmt.Errorf("%q: %w", w.Label, err))
					continue
				}
				steps = append(steps, provisionStep{want: w})
			}
		}
	}
	return steps, conflicts, nil
}

// provisionGenerate makes the keys the plan lacks, in manifest order.
func provisionGenerate(w io.Writer, tok *token.Token, steps []provisionStep) (int, error) {
	generated := 0
	for i := range steps {
		s := &steps[i]
		if s.existing != nil {
			k := s.existing
			fmt.Fprintf(w, "unchanged %s %s key %q id=%s\n", k.Type, k.Usage, k.Label, hex.EncodeToString(k.ID))
			continue
		}
		k, err := tok.GenerateKey(s.want.Label, s.want.Type, s.want.usage)
		if err != nil {
			return generated, fmt.Errorf("%w (after %d generated)", err, generated)
		}
		s.existing = k
		generated++
		fmt.Fprintf(w, "generated %s %s key %q id=%s\n", k.Type, k.Usage, k.Label, hex.EncodeToString(k.ID))
	}
	return generated, nil
}

// provisionExport writes each key's public key to DIR/LABEL.pem, as key
// export writes it, leaving a file that already holds exactly that.
func provisionExport(w io.Writer, dir string, steps []provisionStep) error {
	for _, s := range steps {
		out, err := exportPEM(s.existing)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, s.existing.Label+".pem")
		changed, err := writeIfChanged(path, out, 0o644)
		if err != nil {
			return err
		}
		if changed {
			fmt.Fprintf(w, "wrote %s\n", path)
		} else {
			fmt.Fprintf(w, "unchanged %s\n", path)
		}
	}
	return nil
}

// writeIfChanged writes data to path through a temporary file renamed into
// place, unless path already holds exactly data. It reports whether it
// wrote.
func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tokenseal-*.pem")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing there
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}
