package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/sqlite"
	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var doctorCommand = &cli.Command{
	Name:      "doctor",
	Usage:     "check the module, token, mechanisms, keys and state directory tokenseal relies on",
	UsageText: "tokenseal doctor [--json] [--state-dir DIR]",
	Description: "Reports the module (C_GetInfo), slots, the token's info and flags, every mechanism tokenseal may use\n" +
		"(tried for real after a login, on existing keys or temporary session keys that are destroyed again),\n" +
		"the path open or seal takes with each key, and the state directory's health. Without a PIN (no\n" +
		"--pin-file, TOKENSEAL_PIN or terminal) the trials are skipped and mechanisms are as C_GetMechanismInfo\n" +
		"lists them. Exits 3 when the token lacks something tokenseal needs, 1 when the state directory is unusable.",
	Flags: []cli.Flag{
		flagStateDir,
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON (stable field names, documented in README.md)"},
	},
	Action: doctor,
}

// doctorJSON is the report of `doctor --json`. Field names are stable.
type doctorJSON struct {
	OK         bool                `json:"ok"`
	Module     *doctorModuleJSON   `json:"module"`
	Slots      []doctorSlotJSON    `json:"slots"`
	Token      *doctorTokenJSON    `json:"token"`
	Login      string              `json:"login"`
	TrialsRun  bool                `json:"trials_run"`
	Mechanisms []doctorMechJSON    `json:"mechanisms"`
	Keys       []doctorKeyJSON     `json:"keys"`
	State      doctorStateJSON     `json:"state"`
	Problems   []doctorProblemJSON `json:"problems"`
	Notes      []string            `json:"notes"`
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
	OpenPathOAEPSHA1   string `json:"open_path_oaep_sha1,omitempty"`
	OpenPathOAEPSHA256 string `json:"open_path_oaep_sha256,omitempty"`
	ExportOAEPHash     string `json:"export_oaep_hash,omitempty"`
	OpenPathECDH       string `json:"open_path_ecdh,omitempty"`
	Sign               string `json:"sign,omitempty"`
	Problem            string `json:"problem,omitempty"`
}

type doctorStateJSON struct {
	OK               bool   `json:"ok"`
	Dir              string `json:"dir"`
	Exists           bool   `json:"exists"`
	DirMode          string `json:"dir_mode,omitempty"`
	DBExists         bool   `json:"db_exists"`
	DBMode           string `json:"db_mode,omitempty"`
	LedgerOpens      bool   `json:"ledger_opens"`
	CountersReadable bool   `json:"counters_readable"`
	QuickCheck       string `json:"quick_check,omitempty"`
	Counters         int    `json:"counters"`
	TrustedSenders   int    `json:"trusted_senders"`
	LedgerStreams    int    `json:"ledger_streams"`
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

	cfg := token.Config{
		Module: c.String("module"),
		Token:  c.String("token"),
		Serial: c.String("token-serial"),
		Prompt: promptFunc(c),
	}
	pin, err := userPIN(c)
	if err != nil {
		tokenProblems = append(tokenProblems, err)
		cfg.Prompt = nil
	}
	cfg.PIN = pin
	d := token.Diagnose(cfg)
	for _, p := range d.Problems {
		if !errors.Is(p, token.ErrToken) {
			p = fmt.Errorf("%w: %w", token.ErrToken, p)
		}
		tokenProblems = append(tokenProblems, p)
	}

	var h *state.Health
	dir, err := stateDir(c)
	if err != nil {
		stateProblems = append(stateProblems, err)
		h = &state.Health{}
	} else {
		h = sqlite.Check(context.Background(), dir)
		stateProblems = append(stateProblems, h.Problems...)
	}

	rep := doctorReport(d, h, tokenProblems, stateProblems)
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
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

func doctorReport(d *token.Diagnosis, h *state.Health, tokenProblems, stateProblems []error) *doctorJSON {
	rep := &doctorJSON{
		OK:         len(tokenProblems)+len(stateProblems) == 0,
		Slots:      []doctorSlotJSON{},
		Login:      d.Login,
		TrialsRun:  d.TrialsRun,
		Mechanisms: []doctorMechJSON{},
		Keys:       []doctorKeyJSON{},
		Problems:   []doctorProblemJSON{},
		Notes:      append([]string{}, d.Notes...),
	}
	if m := d.Module; m != nil {
		rep.Module = &doctorModuleJSON{m.Path, m.CryptokiVersion, m.Manufacturer, m.Description, m.LibraryVersion}
	}
	for _, s := range d.Slots {
		rep.Slots = append(rep.Slots, doctorSlotJSON{
			Slot: s.Slot, Description: s.SlotDescription, TokenPresent: s.SlotPresent,
			TokenLabel: s.Label, TokenSerial: s.Serial, Initialized: s.Initialized,
		})
	}
	if t := d.Token; t != nil {
		flags := token.TokenFlagNames(t.Flags)
		has := func(name string) bool {
			for _, f := range flags {
				if f == name {
					return true
				}
			}
			return false
		}
		rep.Token = &doctorTokenJSON{
			Slot: t.Slot, Label: t.Label, Serial: t.Serial, Manufacturer: t.Manufacturer, Model: t.Model,
			HardwareVersion: t.HardwareVersion, FirmwareVersion: t.FirmwareVersion,
			MinPINLen: t.MinPINLen, MaxPINLen: t.MaxPINLen, Flags: append([]string{}, flags...),
			UserPINCountLow:    has("CKF_USER_PIN_COUNT_LOW"),
			UserPINFinalTry:    has("CKF_USER_PIN_FINAL_TRY"),
			UserPINLocked:      has("CKF_USER_PIN_LOCKED"),
			UserPINToBeChanged: has("CKF_USER_PIN_TO_BE_CHANGED"),
		}
	}
	for _, m := range d.Capabilities {
		rep.Mechanisms = append(rep.Mechanisms, doctorMechJSON{
			Name: m.Name, Mechanism: m.Mechanism, Function: m.Function, UsedFor: m.UsedFor,
			Offered: m.Offered, Trial: m.Trial, Detail: m.Detail, Supported: m.Supported(),
		})
	}
	for _, k := range d.Keys {
		kj := doctorKeyJSON{Label: k.Label, ID: hex.EncodeToString(k.ID), Type: k.Type, Usage: k.Usage,
			ExportOAEPHash: k.ExportHash, Sign: k.Sign, Problem: k.Problem}
		rsaKey := strings.HasPrefix(k.Type, "rsa-")
		exchange := k.Usage == token.UsageExchange || k.Usage == "exchange+sign"
		signing := k.Usage == token.UsageSign || k.Usage == "exchange+sign"
		switch {
		case exchange && rsaKey:
			kj.OpenPathOAEPSHA1, kj.OpenPathOAEPSHA256 = orNone(k.OAEPPathSHA1), orNone(k.OAEPPathSHA256)
		case exchange:
			kj.OpenPathECDH = "none"
			if k.Derive {
				kj.OpenPathECDH = "derive"
			}
		}
		if signing && kj.Sign == "" {
			kj.Sign = "none"
		}
		rep.Keys = append(rep.Keys, kj)
	}
	rep.State = doctorStateJSON{
		OK: len(stateProblems) == 0, Dir: h.Dir, Exists: h.Exists, DBExists: h.DBExists,
		LedgerOpens: h.Opens, CountersReadable: h.CountersReadable, QuickCheck: h.QuickCheck,
		Counters: h.Counters, TrustedSenders: h.Trusted, LedgerStreams: h.Streams,
	}
	if h.Exists {
		rep.State.DirMode = fmt.Sprintf("%04o", h.DirMode)
	}
	if h.DBExists {
		rep.State.DBMode = fmt.Sprintf("%04o", h.DBMode)
	}
	rep.Notes = append(rep.Notes, h.Notes...)
	for _, p := range tokenProblems {
		rep.Problems = append(rep.Problems, doctorProblemJSON{"token", oneLine(p.Error())})
	}
	for _, p := range stateProblems {
		rep.Problems = append(rep.Problems, doctorProblemJSON{"state", oneLine(p.Error())})
	}
	return rep
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// printDoctor writes the human-readable report.
func printDoctor(w io.Writer, r *doctorJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if m := r.Module; m != nil {
		fmt.Fprintf(tw, "module:\t%s\n", m.Path)
		fmt.Fprintf(tw, "\tcryptoki %s, manufacturer %q, library %q version %s\n", m.CryptokiVersion, m.Manufacturer, m.LibraryDescription, m.LibraryVersion)
	} else {
		fmt.Fprintf(tw, "module:\tnot loaded\n")
	}
	for i, s := range r.Slots {
		head := ""
		if i == 0 {
			head = "slots:"
		}
		if !s.TokenPresent {
			fmt.Fprintf(tw, "%s\tslot %d: no token (%s)\n", head, s.Slot, s.Description)
			continue
		}
		if !s.Initialized {
			fmt.Fprintf(tw, "%s\tslot %d: uninitialized token (%s)\n", head, s.Slot, s.Description)
			continue
		}
		fmt.Fprintf(tw, "%s\tslot %d: token %q serial %s\n", head, s.Slot, s.TokenLabel, s.TokenSerial)
	}
	if t := r.Token; t != nil {
		fmt.Fprintf(tw, "token:\t%q serial %s, manufacturer %q, model %q, hardware %s, firmware %s\n",
			t.Label, t.Serial, t.Manufacturer, t.Model, t.HardwareVersion, t.FirmwareVersion)
		fmt.Fprintf(tw, "\tflags: %s\n", strings.Join(t.Flags, " "))
		fmt.Fprintf(tw, "\tuser PIN: %d to %d characters, count low %s, final try %s, locked %s\n",
			t.MinPINLen, t.MaxPINLen, yesNo(t.UserPINCountLow), yesNo(t.UserPINFinalTry), yesNo(t.UserPINLocked))
	} else {
		fmt.Fprintf(tw, "token:\tnone selected\n")
	}
	switch {
	case r.TrialsRun:
		fmt.Fprintf(tw, "login:\tok; mechanisms were tried on the token\n")
	default:
		fmt.Fprintf(tw, "login:\t%s; trials skipped, mechanisms as C_GetMechanismInfo lists them\n", r.Login)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MECHANISM\tCKM\tFUNCTION\tOFFERED\tTRIAL\tSUPPORTED\tDETAIL")
	for _, m := range r.Mechanisms {
		ckm := m.Mechanism
		if ckm == "" {
			ckm = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, ckm, m.Function, yesNo(m.Offered), m.Trial, yesNo(m.Supported), m.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if !r.TrialsRun {
		fmt.Fprintln(w, "keys: not listed (no login)")
	} else if len(r.Keys) == 0 {
		fmt.Fprintln(w, "keys: none")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tTYPE\tUSAGE\tPATH")
		for _, k := range r.Keys {
			var path []string
			if k.OpenPathOAEPSHA1 != "" {
				path = append(path, fmt.Sprintf("open oaep-sha1: %s, oaep-sha256: %s", k.OpenPathOAEPSHA1, k.OpenPathOAEPSHA256))
			}
			if k.ExportOAEPHash != "" {
				path = append(path, "key export records oaep-hash "+k.ExportOAEPHash)
			}
			if k.OpenPathECDH != "" {
				path = append(path, "open ecdh: "+k.OpenPathECDH)
			}
			if k.Sign != "" {
				path = append(path, "sign: "+k.Sign)
			}
			if k.Problem != "" {
				path = append(path, "PROBLEM: "+k.Problem)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Label, k.Type, k.Usage, strings.Join(path, "; "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	s := r.State
	switch {
	case s.Dir == "":
		fmt.Fprintln(w, "state: no state directory")
	case !s.Exists || !s.DBExists:
		fmt.Fprintf(w, "state: %s: %s\n", s.Dir, okOrProblems(s.OK))
	default:
		fmt.Fprintf(w, "state: %s: %s (directory %s, state.db %s, ledger opens %s, counters readable %s, quick_check %s; %d counters, %d trusted senders, %d ledger streams)\n",
			s.Dir, okOrProblems(s.OK), s.DirMode, s.DBMode, yesNo(s.LedgerOpens), yesNo(s.CountersReadable), orNone(s.QuickCheck),
			s.Counters, s.TrustedSenders, s.LedgerStreams)
	}

	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "problems: none")
		return nil
	}
	fmt.Fprintf(w, "problems: %d\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem (%s): %s\n", p.Area, p.Message)
	}
	return nil
}

func okOrProblems(ok bool) string {
	if ok {
		return "ok"
	}
	return "PROBLEMS"
}
