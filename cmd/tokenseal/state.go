package main

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/backend"
	"github.com/tokenseal/tokenseal/envelope/state/postgres"
	"github.com/urfave/cli/v2"
)

var flagStateURL = &cli.StringFlag{
	Name: "state-url",
	Usage: "keep counters, trusted senders and the ledger in the PostgreSQL database `URL` (postgres://… or key=value, as libpq; " +
		"the password from PGPASSFILE, ~/.pgpass or PGPASSWORD, never here) instead of --state-dir: hosts sharing it accept each envelope once",
	EnvVars: []string{"TOKENSEAL_STATE_URL"},
}

// stateSpec is the store the user chose: the state URL or the state
// directory, whichever was given at the higher level (flag > environment
// > config file; at one level the URL), else the default directory. A
// URL holding a password is refused unless it came from the environment.
func stateSpec(c *cli.Context) (string, error) {
	if u := c.String("state-url"); u != "" && levelOf(c, "state-url") >= levelOf(c, "state-dir") {
		if postgres.HasPassword(u) && u != os.Getenv(flagStateURL.EnvVars[0]) {
			if levelOf(c, "state-url") == levelConfig {
				return "", passwordError("the config file's state-url")
			}
			return "", passwordError("--state-url")
		}
		return u, nil
	}
	return stateDir(c)
}

func passwordError(what string) error {
	return usageErrorf("%s must not carry a password (others can read command lines and config files): give it in PGPASSFILE, ~/.pgpass or PGPASSWORD", what)
}

// openStore opens the store the user chose.
func openStore(c *cli.Context) (state.Store, error) {
	spec, err := stateSpec(c)
	if err != nil {
		return nil, err
	}
	return backend.Open(context.Background(), spec)
}

// stateDir returns --state-dir, TOKENSEAL_STATE_DIR or the default.
func stateDir(c *cli.Context) (string, error) {
	if d := c.String("state-dir"); d != "" {
		return d, nil
	}
	return state.DefaultDir()
}

func openState(c *cli.Context) (state.Store, error) { return openStore(c) }

// lazyState opens the state directory on first use, once: an open that
// never meets a signed envelope never creates one.
type lazyState struct {
	c   *cli.Context
	mu  sync.Mutex
	st  state.Store
	err error
}

func (l *lazyState) get() (state.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil && l.err == nil {
		l.st, l.err = openState(l.c)
	}
	return l.st, l.err
}

// LookupTrusted implements receive.Store.
func (l *lazyState) LookupTrusted(ctx context.Context, id [32]byte) (*state.Trusted, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.LookupTrusted(ctx, id)
}

// AcceptBatch implements receive.Store.
func (l *lazyState) AcceptBatch(ctx context.Context, items []state.AcceptItem, window uint64, now time.Time) []error {
	st, err := l.get()
	if err != nil {
		errs := make([]error, len(items))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	return st.AcceptBatch(ctx, items, window, now)
}

// Accepted implements receive.Store.
func (l *lazyState) Accepted(ctx context.Context, keyID [32]byte, stream, serial uint64) (*state.Acceptance, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.Accepted(ctx, keyID, stream, serial)
}

// RecordRewrap implements receive.Store.
func (l *lazyState) RecordRewrap(ctx context.Context, keyID [32]byte, stream, serial uint64, now time.Time) (*state.Rewrap, bool, error) {
	st, err := l.get()
	if err != nil {
		return nil, false, err
	}
	return st.RecordRewrap(ctx, keyID, stream, serial, now)
}

// Close closes the state database if it was opened.
func (l *lazyState) Close() {
	if l.st != nil {
		l.st.Close()
	}
}
