// Command pgserver runs a throwaway PostgreSQL server for scripts/bench.sh
// (internal/pgtest, with fsync on, as a production server runs): it
// prints one line, "URL PASSFILE" (a TCP URL on 127.0.0.1 and the
// PGPASSFILE holding its password), and stops the server when its
// standard input closes or it is told to stop (SIGINT, SIGTERM).
//
//	pgserver                      # serve
//	pgserver -reset URL           # empty the ledger (accepted serials and
//	                              # streams), keeping trusted senders and
//	                              # counters: a fresh ledger for each run
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/tokenseal/tokenseal/internal/pgtest"
)

func main() {
	reset := flag.String("reset", "", "empty the ledger of the database `URL` and exit")
	flag.Parse()
	if *reset != "" {
		if err := resetLedger(*reset); err != nil {
			fmt.Fprintln(os.Stderr, "pgserver:", err)
			os.Exit(1)
		}
		return
	}
	srv, stop, err := pgtest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgserver:", err)
		os.Exit(1)
	}
	defer stop()
	if err := srv.Exec(context.Background(), "postgres", "CREATE DATABASE bench"); err != nil {
		fmt.Fprintln(os.Stderr, "pgserver:", err)
		return
	}
	fmt.Println(srv.URL("bench"), srv.PassFile)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-done:
	case <-sig:
	}
}

func resetLedger(url string) error {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "TRUNCATE tokenseal.accepted, tokenseal.streams")
	return err
}
