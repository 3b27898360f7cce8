package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// testDoctorAndInspect: with --state-url, doctor checks the database
// (connection, server and schema versions, privileges, clock) and its
// problems exit 1 as the state directory's do; inspect finds trusted
// names there (issue 14). Before the fix doctor looked at the state
// directory whatever the URL, and inspect never named a sender it found
// only in the database.
func (f *fleet) testDoctorAndInspect(t *testing.T) {
	db, url := f.database(t)
	res := f.expect(t, 0, 0, url, "doctor", "--json")
	var rep struct {
		State doctorStateJSON `json:"state"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, res.stdout)
	}
	d := rep.State.Database
	if !rep.State.OK || rep.State.Backend != "postgres" || d == nil || !d.Connects || d.SchemaVersion != state.SchemaVersion ||
		!d.Privileged || d.TrustedSenders != 1 || d.ServerVersion == "" || strings.Contains(d.URL, "password") {
		t.Fatalf("doctor --json state: %+v database %+v", rep.State, d)
	}
	res = f.expect(t, 0, 0, url, "doctor")
	if !regexp.MustCompile(`(?m)^state: database postgres://\S+: ok \(server \S+.*, schema version \d+, read and write privileges yes, clock skew -?[0-9.]+m?s; 1 trusted senders, 0 ledger streams\)$`).MatchString(res.stdout) {
		t.Fatalf("doctor:\n%s", res.stdout)
	}

	// inspect names the sender from the database.
	res = f.expect(t, 0, 0, url, "inspect", f.envs[0])
	if !regexp.MustCompile(`(?m)^sender \(not verified by inspect\): [0-9a-f]{64} \(alice\)$`).MatchString(res.stdout) {
		t.Fatalf("inspect:\n%s", res.stdout)
	}

	// A user who may only read: exit 1, the problem says what to grant.
	for _, sql := range []string{"CREATE ROLE reader LOGIN", "GRANT CONNECT ON DATABASE " + db + " TO reader"} {
		if err := f.srv.Exec(context.Background(), "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, sql := range []string{"GRANT USAGE ON SCHEMA tokenseal TO reader", "GRANT SELECT ON ALL TABLES IN SCHEMA tokenseal TO reader"} {
		if err := f.srv.Exec(context.Background(), db, sql); err != nil {
			t.Fatal(err)
		}
	}
	reader := fmt.Sprintf("host=%s port=%d user=reader dbname=%s sslmode=disable", f.srv.Socket, f.srv.Port, db)
	res = f.run(t, 0, reader, "doctor")
	if res.code != exitOther || !strings.Contains(res.stdout, "PROBLEMS") ||
		!regexp.MustCompile(`(?m)^problem \(state\): state database .*: this user may not read and write tokenseal\.\w+ \(fix: GRANT`).MatchString(res.stdout) {
		t.Fatalf("read-only user: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}

	// No server there: exit 1, one problem line, no token problem.
	res = f.run(t, 0, "postgres://tokenseal@127.0.0.1:1/nothing?sslmode=disable&connect_timeout=2", "doctor", "--json")
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || res.code != exitOther || rep.State.OK || rep.State.Database == nil || rep.State.Database.Connects {
		t.Fatalf("no server: exit %d, %v\n%s\n%s", res.code, err, res.stdout, res.stderr)
	}
}
