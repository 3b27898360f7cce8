package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// Health is what [Check] found in a PostgreSQL state database.
type Health struct {
	Where         string        // the connection string without any password
	Connects      bool          // a connection was made
	ServerVersion string        // the server's version, as it reports it
	SchemaVersion int           // 0: no tokenseal schema yet
	Privileged    bool          // SELECT, INSERT, UPDATE, DELETE on every table
	ClockSkew     time.Duration // the server's clock minus this host's
	Trusted       int           // trusted senders
	Streams       int           // (sender, stream) entries in the ledger
	// Problems keep tokenseal from using the database; Notes are worth
	// knowing but harmless. Every problem matches state.ErrUnhealthy.
	Problems []error
	Notes    []string
}

// MaxClockSkew is the clock difference from which Check reports a
// problem: the default --max-skew of open.
const MaxClockSkew = 5 * time.Minute

// Check examines the database spec without creating anything: it must
// accept a connection, hold the current schema (or none yet: a note), let
// the user read and write every table, and keep a clock within
// MaxClockSkew of this host's (more than a second is a note).
func Check(ctx context.Context, spec string) *Health {
	sh := &state.Health{}
	h := &Health{Where: Redact(spec)}
	defer func() { h.Problems = sh.Problems }()
	s, v, err := open(ctx, spec, Options{}, false)
	if err != nil {
		sh.Problem("%v", err)
		return h
	}
	defer s.Close()
	h.Connects, h.SchemaVersion = true, v
	if err := s.DB.QueryRowContext(ctx, `SHOW server_version`).Scan(&h.ServerVersion); err != nil {
		sh.Problem("state database %s: %v", h.Where, err)
	}
	if err := h.checkClock(ctx, s); err != nil {
		sh.Problem("state database %s: reading the server's clock: %v", h.Where, err)
	} else if d := h.ClockSkew.Abs(); d > MaxClockSkew {
		sh.Problem("state database %s: the server's clock differs from this host's by %s (more than %s): fix the clocks (NTP)", h.Where, h.ClockSkew.Round(time.Millisecond), MaxClockSkew)
	} else if d > time.Second {
		h.Notes = append(h.Notes, fmt.Sprintf("the server's clock differs from this host's by %s", h.ClockSkew.Round(time.Millisecond)))
	}
	if v == 0 {
		h.Notes = append(h.Notes, fmt.Sprintf("state database %s has no tokenseal schema yet: run tokenseal state migrate (or it is made on first use)", h.Where))
		return h
	}
	if err := state.CheckVersion(v, "state database "+h.Where); err != nil {
		sh.Problem("%v", err)
		return h
	}
	h.checkPrivileges(ctx, s, sh)
	if ts, err := s.ListTrusted(ctx); err != nil {
		sh.Problem("state database %s: trusted senders cannot be read: %v", h.Where, err)
	} else {
		h.Trusted = len(ts)
	}
	if es, err := s.Ledger(ctx); err != nil {
		sh.Problem("state database %s: the replay ledger cannot be read: %v", h.Where, err)
	} else {
		h.Streams = len(es)
	}
	return h
}

// checkClock measures the server's clock against this host's, taking the
// middle of the round trip.
func (h *Health) checkClock(ctx context.Context, s *Store) error {
	var ms int64
	t0 := time.Now()
	if err := s.DB.QueryRowContext(ctx, `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint`).Scan(&ms); err != nil {
		return err
	}
	t1 := time.Now()
	mid := t0.Add(t1.Sub(t0) / 2)
	h.ClockSkew = time.UnixMilli(ms).Sub(mid)
	return nil
}

func (h *Health) checkPrivileges(ctx context.Context, s *Store, sh *state.Health) {
	h.Privileged = true
	for _, t := range tables {
		var ok bool
		err := s.DB.QueryRowContext(ctx, `SELECT has_schema_privilege('tokenseal', 'USAGE') AND has_table_privilege('tokenseal.'||$1, 'SELECT')
			AND has_table_privilege('tokenseal.'||$1, 'INSERT') AND has_table_privilege('tokenseal.'||$1, 'UPDATE')
			AND has_table_privilege('tokenseal.'||$1, 'DELETE')`, t).Scan(&ok)
		if err != nil {
			sh.Problem("state database %s: privileges on tokenseal.%s: %v", h.Where, t, err)
			h.Privileged = false
			continue
		}
		if !ok {
			sh.Problem("state database %s: this user may not read and write tokenseal.%s (fix: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tokenseal TO the user, and USAGE ON SCHEMA tokenseal)", h.Where, t)
			h.Privileged = false
		}
	}
}
