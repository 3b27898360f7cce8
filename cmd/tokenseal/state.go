package main

import (
	"context"
	"sync"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/urfave/cli/v2"
)

// stateDir returns --state-dir, TOKENSEAL_STATE_DIR or the default.
func stateDir(c *cli.Context) (string, error) {
	if d := c.String("state-dir"); d != "" {
		return d, nil
	}
	return state.DefaultDir()
}

func openState(c *cli.Context) (*state.Store, error) {
	dir, err := stateDir(c)
	if err != nil {
		return nil, err
	}
	return state.Open(dir)
}

// lazyState opens the state directory on first use, once: an open that
// never meets a signed envelope never creates one.
type lazyState struct {
	c   *cli.Context
	mu  sync.Mutex
	st  *state.Store
	err error
}

func (l *lazyState) get() (*state.Store, error) {
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

// Close closes the state database if it was opened.
func (l *lazyState) Close() {
	if l.st != nil {
		l.st.Close()
	}
}
