package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tokenseal/tokenseal/envelope/state/backend"
	"github.com/tokenseal/tokenseal/envelope/state/postgres"
	"github.com/tokenseal/tokenseal/envelope/state/sqlite"
	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var doctorCommand = &cli.Command{
	Name:      "doctor",
	Usage:     "check the module, token, mechanisms, keys and state (directory or database) tokenseal relies on",
	UsageText: "tokenseal doctor [--json] [--state-dir DIR | --state-url URL]",
	Description: "Reports the module (C_GetInfo), slots, the token's info and flags, every mechanism tokenseal may use\n" +
		"(tried for real after a login, on existing keys or temporary session keys that are destroyed again),\n" +
		"the path open or seal takes with each key, and the state's health: the state directory, or with\n" +
		"--state-url the PostgreSQL database (connection, server and schema versions, privileges, clock skew).\n" +
		"Without a PIN (no --pin-file, TOKENSEAL_PIN or terminal) the trials are skipped and mechanisms are as\n" +
		"C_GetMechanismInfo lists them. Exits 3 when the token lacks something tokenseal needs, 1 when the state\n" +
		"is unusable.",
	Flags: []cli.Flag{
		flagStateDir,
		flagStateURL,
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON (stable field names, documented in docs/tokens.md)"},
	},
	Action: doctor,
}

// doctorJSON is the report of `doctor --json`. Field names are stable.
type doctorJSON struct {
	OK        bool              `json:"ok"`
	Module    *doctorModuleJSON `json:"module"`
	Slots     []doctorSlotJSON  `json:"slots"`
	Token     *doctorTokenJSON  `json:"token"`
	Login     string            `json:"login"`
	TrialsRun bool              `json:"trials_run"`
	// TokenObjects: the trials' temporary key pairs were token objects
	// (the token makes no session objects), destroyed again.
	TokenObjects bool                `json:"token_objects"`
	Mechanisms   []doctorMechJSON    `json:"mechanisms"`
	Keys         []doctorKeyJSON     `json:"keys"`
	State        doctorStateJSON     `json:"state"`
	Problems     []doctorProblemJSON `json:"problems"`
	Notes        []string            `json:"notes"`
}

type doctorModuleJSON struct {
	Path               string `json:"path"`
	CryptokiVersion    string `json:"cryptoki_version"`
	Manufacturer       string `json:"manufacturer"`
	LibraryDescription string `json:"library_description"`
	LibraryVersion     string `json:"library_version"`
}

type doctorSlotJSON struct {
	Slot         uint   `json:"slot"`
	Description  string `json:"description"`
	TokenPresent bool   `json:"token_present"`
	TokenLabel   string `json:"token_label,omitempty"`
	TokenSerial  string `json:"token_serial,omitempty"`
	Initialized  bool   `json:"initialized"`
}

type doctorTokenJSON struct {
	Slot               uint     `json:"slot"`
	Label              string   `json:"label"`
	Serial             string   `json:"serial"`
	Manufacturer       string   `json:"manufacturer"`
	Model              string   `json:"model"`
	HardwareVersion    string   `json:"hardware_version"`
	FirmwareVersion    string   `json:"firmware_version"`
	MinPINLen          uint     `json:"min_pin_len"`
	MaxPINLen          uint     `json:"max_pin_len"`
	Flags              []string `json:"flags"`
	UserPINCountLow    bool     `json:"user_pin_count_low"`
	UserPINFinalTry    bool     `json:"user_pin_final_try"`
	UserPINLocked      bool     `json:"user_pin_locked"`
	UserPINToBeChanged bool     `json:"user_pin_to_be_changed"`
}

type doctorMechJSON struct {
	Name      string `json:"name"`
	Mechanism string `json:"mechanism"`
	Function  string `json:"function"`
	UsedFor   string `json:"used_for"`
	Offered   bool   `json:"offered"`
	Trial     string `json:"trial"`
	Detail    string `json:"detail"`
	Supported bool   `json:"supported"`
}

type doctorKeyJSON struct {
	Label              string `json:"label"`
	ID                 string `json:"id"`
	Type               string `json:"type"`
	Usage              string `json:"usage"`
	MadeByTokenseal    bool   `json:"made_by_tokenseal"`
	OpenPathOAEPSHA1   string `json:"open_path_oaep_sha1,omitempty"`
	OpenPathOAEPSHA256 string `json:"open_path_oaep_sha256,omitempty"`
	ExportOAEPHash     string `json:"export_oaep_hash,omitempty"`
	OpenPathECDH       string `json:"open_path_ecdh,omitempty"`
	Sign               string `json:"sign,omitempty"`
	Problem            string `json:"problem,omitempty"`
}

type doctorStateJSON struct {
	OK bool `json:"ok"`
	// Backend is "sqlite" (the state directory) or "postgres"
	// (--state-url): the directory's fields are empty for a database,
	// and Database is set only for one.
	Backend          string              `json:"backend"`
	Dir              string              `json:"dir"`
	Exists           bool                `json:"exists"`
	DirMode          string              `json:"dir_mode,omitempty"`
	DBExists         bool                `json:"db_exists"`
	DBMode           string              `json:"db_mode,omitempty"`
	LedgerOpens      bool                `json:"ledger_opens"`
	CountersReadable bool                `json:"counters_readable"`
	QuickCheck       string              `json:"quick_check,omitempty"`
	Counters         int                 `json:"counters"`
	TrustedSenders   int                 `json:"trusted_senders"`
	LedgerStreams    int                 `json:"ledger_streams"`
	Database         *doctorDatabaseJSON `json:"database,omitempty"`
	notes            []string            // for the report's notes
}

// doctorDatabaseJSON is what doctor found in a PostgreSQL state database.
type doctorDatabaseJSON struct {
	URL            string `json:"url"` // without any password
	Connects       bool   `json:"connects"`
	ServerVersion  string `json:"server_version"`
	SchemaVersion  int    `json:"schema_version"` // 0: no tokenseal schema yet
	Privileged     bool   `json:"privileged"`     // may read and write every table
	ClockSkewMS    int64  `json:"clock_skew_ms"`  // the server's clock minus this host's
	TrustedSenders int    `json:"trusted_senders"`
	LedgerStreams  int    `json:"ledger_streams"`
}

type doctorProblemJSON struct {
	Area    string `json:"area"` // "token" or "state"
	Message string `json:"message"`
}

func doctor(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("doctor takes no arguments")
	}
	var tokenProblems, stateProblems []error

	cfg, err := tokenConfig(c)
	if err != nil {
		if errors.As(err, new(*usageError)) {
			return err
		}
		tokenProblems = append(tokenProblems, err)
		cfg.Prompt = nil
	}
	d := token.Diagnose(cfg)
	tokenProblems = append(tokenProblems, d.Problems...)

	st, stateProblems := doctorState(c)
	rep := doctorReport(d, st, tokenProblems, stateProblems)
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else if err := printDoctor(c.App.Writer, rep); err != nil {
		return err
	}

	// One line per problem on stderr; the first token problem (else the
	// first state problem) is returned and decides the exit code.
	all := append(tokenProblems, stateProblems...)
	if len(all) == 0 {
		return nil
	}
	for _, p := range all[1:] {
		report(c.App.ErrWriter, p)
	}
	return all[0]
}

// doctorState checks the store the user chose: the PostgreSQL database
// of --state-url, else the state directory. A usage error (a password in
// the URL) is a problem like the others.
func doctorState(c *cli.Context) (*doctorStateJSON, []error) {
	spec, err := stateSpec(c)
	if err != nil {
		return &doctorStateJSON{Backend: "sqlite"}, []error{err}
	}
	ctx := context.Background()
	if backend.IsURL(spec) {
		h := postgres.Check(ctx, spec)
		return &doctorStateJSON{OK: len(h.Problems) == 0, Backend: "postgres", notes: h.Notes, Database: &doctorDatabaseJSON{
			URL: h.Where, Connects: h.Connects, ServerVersion: h.ServerVersion, SchemaVersion: h.SchemaVersion,
			Privileged: h.Privileged, ClockSkewMS: h.ClockSkew.Milliseconds(), TrustedSenders: h.Trusted, LedgerStreams: h.Streams,
		}}, h.Problems
	}
	h := sqlite.Check(ctx, spec)
	s := &doctorStateJSON{
		OK: len(h.Problems) == 0, Backend: "sqlite", Dir: h.Dir, Exists: h.Exists, DBExists: h.DBExists,
		LedgerOpens: h.Opens, CountersReadable: h.CountersReadable, QuickCheck: h.QuickCheck,
		Counters: h.Counters, TrustedSenders: h.Trusted, LedgerStreams: h.Streams, notes: h.Notes,
	}
	if h.Exists {
		s.DirMode = fmt.Sprintf("%04o", h.DirMode)
	}
	if h.DBExists {
		s.DBMode = fmt.Sprintf("%04o", h.DBMode)
	}
	return s, h.Problems
}

func doctorReport(d *token.Diagnosis, st *doctorStateJSON, tokenProblems, stateProblems []error) *doctorJSON {
	rep := &doctorJSON{
		OK:           len(tokenProblems)+len(stateProblems) == 0,
		Slots:        []doctorSlotJSON{},
		Login:        d.Login,
		TrialsRun:    d.TrialsRun,
		Mechanisms:   []doctorMechJSON{},
		Keys:         []doctorKeyJSON{},
		Problems:     []doctorProblemJSON{},
		Notes:        append(append([]string{}, d.Notes...), doctorAdvice(d)...),
		TokenObjects: d.TokenObjects,
	}
	if m := d.Module; m != nil {
		rep.Module = &doctorModuleJSON{m.Path, m.CryptokiVersion, m.Manufacturer, m.Description, m.LibraryVersion}
	}
	for _, s := range d.Slots {
		rep.Slots = append(rep.Slots, doctorSlotJSON{
			Slot: s.Slot, Description: s.SlotDescription, TokenPresent: s.Present,
			TokenLabel: s.Label, TokenSerial: s.Serial, Initialized: s.Initialized,
		})
	}
	if t := d.Token; t != nil {
		rep.Token = doctorToken(t)
	}
	for _, m := range d.Capabilities {
		rep.Mechanisms = append(rep.Mechanisms, doctorMechJSON{
			Name: m.Name, Mechanism: m.Mechanism, Function: m.Function, UsedFor: m.UsedFor,
			Offered: m.Offered, Trial: m.Trial, Detail: m.Detail, Supported: m.Supported(),
		})
	}
	for _, k := range d.Keys {
		rep.Keys = append(rep.Keys, doctorKey(k))
	}
	rep.State = *st
	rep.State.OK = len(stateProblems) == 0
	rep.Notes = append(rep.Notes, st.notes...)
	for _, p := range tokenProblems {
		rep.Problems = append(rep.Problems, doctorProblemJSON{"token", oneLine(p.Error())})
	}
	for _, p := range stateProblems {
		rep.Problems = append(rep.Problems, doctorProblemJSON{"state", oneLine(p.Error())})
	}
	return rep
}

func doctorToken(t *token.Info) *doctorTokenJSON {
	flags := token.FlagNames(t.Flags)
	has := func(name string) bool { return slices.Contains(flags, name) }
	return &doctorTokenJSON{
		Slot: t.Slot, Label: t.Label, Serial: t.Serial, Manufacturer: t.Manufacturer, Model: t.Model,
		HardwareVersion: t.HardwareVersion, FirmwareVersion: t.FirmwareVersion,
		MinPINLen: t.MinPINLen, MaxPINLen: t.MaxPINLen, Flags: append([]string{}, flags...),
		UserPINCountLow:    has("CKF_USER_PIN_COUNT_LOW"),
		UserPINFinalTry:    has("CKF_USER_PIN_FINAL_TRY"),
		UserPINLocked:      has("CKF_USER_PIN_LOCKED"),
		UserPINToBeChanged: has("CKF_USER_PIN_TO_BE_CHANGED"),
	}
}

func doctorKey(k token.KeyDiagnosis) doctorKeyJSON {
	kj := doctorKeyJSON{Label: k.Label, ID: hex.EncodeToString(k.ID), Type: k.Type, Usage: k.Usage.String(),
		MadeByTokenseal: k.Generated, ExportOAEPHash: k.ExportHash, Sign: k.Sign, Problem: k.Problem}
	switch exchange := k.Usage.CanExchange(); {
	case exchange && strings.HasPrefix(k.Type, "rsa-"):
		kj.OpenPathOAEPSHA1, kj.OpenPathOAEPSHA256 = orNone(k.OAEPPathSHA1), orNone(k.OAEPPathSHA256)
	case exchange:
		kj.OpenPathECDH = "none"
		if k.Derive {
			kj.OpenPathECDH = "derive"
		}
	}
	if k.Usage.CanSign() && kj.Sign == "" {
		kj.Sign = "none"
	}
	return kj
}

// doctorAdvice is what the CLI adds to the report's notes: what to type
// about what the token package found.
func doctorAdvice(d *token.Diagnosis) []string {
	var out []string
	if d.Token != nil && !d.HavePIN && d.Login == token.LoginSkipped {
		out = append(out, "give --pin-file or TOKENSEAL_PIN to run the trials")
	}
	if d.Token != nil && slices.Contains(token.FlagNames(d.Token.Flags), "CKF_USER_PIN_TO_BE_CHANGED") {
		out = append(out, "change the user PIN with 'tokenseal token change-pin'")
	}
	if d.TrialsRun && len(d.Keys) == 0 {
		out = append(out, "make keys with 'tokenseal key generate' or 'tokenseal key provision'")
	}
	for _, c := range d.Capabilities {
		if c.Trial == token.TrialRefused || d.TokenObjects {
			out = append(out, "the module may print its own messages on stderr while mechanisms are tried (tpm2-pkcs11 prints \"ERROR: ...\" lines); tokenseal's own lines start with \"tokenseal:\"")
			break
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
