package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printDoctor writes the human-readable report: module, slots, token and
// login; the mechanisms; the keys; the state directory, notes and
// problems.
func printDoctor(w io.Writer, r *doctorJSON) error {
	for _, section := range []func(io.Writer, *doctorJSON) error{printDoctorToken, printDoctorMechanisms, printDoctorKeys} {
		if err := section(w, r); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	printDoctorState(w, r)
	return nil
}

func printDoctorToken(w io.Writer, r *doctorJSON) error {
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
		switch {
		case !s.TokenPresent:
			fmt.Fprintf(tw, "%s\tslot %d: no token (%s)\n", head, s.Slot, printable(s.Description))
		case !s.Initialized:
			fmt.Fprintf(tw, "%s\tslot %d: uninitialized token (%s)\n", head, s.Slot, printable(s.Description))
		default:
			fmt.Fprintf(tw, "%s\tslot %d: token %q serial %s\n", head, s.Slot, s.TokenLabel, printable(s.TokenSerial))
		}
	}
	if t := r.Token; t != nil {
		fmt.Fprintf(tw, "token:\t%q serial %s, manufacturer %q, model %q, hardware %s, firmware %s\n",
			t.Label, printable(t.Serial), t.Manufacturer, t.Model, t.HardwareVersion, t.FirmwareVersion)
		fmt.Fprintf(tw, "\tflags: %s\n", strings.Join(t.Flags, " "))
		fmt.Fprintf(tw, "\tuser PIN: %d to %d characters, count low %s, final try %s, locked %s\n",
			t.MinPINLen, t.MaxPINLen, yesNo(t.UserPINCountLow), yesNo(t.UserPINFinalTry), yesNo(t.UserPINLocked))
	} else {
		fmt.Fprintf(tw, "token:\tnone selected\n")
	}
	if r.TrialsRun {
		fmt.Fprintf(tw, "login:\tok; mechanisms were tried on the token\n")
	} else {
		fmt.Fprintf(tw, "login:\t%s; trials skipped, mechanisms as C_GetMechanismInfo lists them\n", r.Login)
	}
	return tw.Flush()
}

func printDoctorMechanisms(w io.Writer, r *doctorJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MECHANISM\tCKM\tFUNCTION\tOFFERED\tTRIAL\tSUPPORTED\tDETAIL")
	for _, m := range r.Mechanisms {
		ckm := m.Mechanism
		if ckm == "" {
			ckm = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, ckm, m.Function, yesNo(m.Offered), m.Trial, yesNo(m.Supported), m.Detail)
	}
	return tw.Flush()
}

func printDoctorKeys(w io.Writer, r *doctorJSON) error {
	switch {
	case !r.TrialsRun:
		fmt.Fprintln(w, "keys: not listed (no login)")
		return nil
	case len(r.Keys) == 0:
		fmt.Fprintln(w, "keys: none")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(k.Label), k.Type, k.Usage, strings.Join(path, "; "))
	}
	return tw.Flush()
}

func printDoctorState(w io.Writer, r *doctorJSON) {
	s := r.State
	switch db := s.Database; {
	case db != nil && !db.Connects:
		fmt.Fprintf(w, "state: database %s: %s (no connection)\n", db.URL, okOrProblems(s.OK))
	case db != nil:
		fmt.Fprintf(w, "state: database %s: %s (server %s, schema version %d, read and write privileges %s, clock skew %s; %d trusted senders, %d ledger streams)\n",
			db.URL, okOrProblems(s.OK), db.ServerVersion, db.SchemaVersion, yesNo(db.Privileged), time.Duration(db.ClockSkewMS)*time.Millisecond,
			db.TrustedSenders, db.LedgerStreams)
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
		return
	}
	fmt.Fprintf(w, "problems: %d\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem (%s): %s\n", p.Area, p.Message)
	}
}

func okOrProblems(ok bool) string {
	if ok {
		return "ok"
	}
	return "PROBLEMS"
}
