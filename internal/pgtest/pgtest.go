// Package pgtest runs a throwaway PostgreSQL server for tests: Debian's
// PostgreSQL 15 (initdb, postgres) in a temporary directory, with its own
// Unix socket directory and a free TCP port on 127.0.0.1, stopped by PID
// when the test ends (t.Cleanup, so also after a failure or a panic), or
// by the stop function [StartMain] returns.
//
// initdb refuses to run as root, and CI runs as root: then the server
// runs as the "postgres" system user (else "nobody"), its directory
// handed to that user. A missing server fails the test with an install
// hint; it never skips.
//
// The server trusts connections on its socket and asks for a password
// (SCRAM) on TCP: [Server.URL] is a TCP URL without the password, which
// the test gives through PGPASSFILE ([Server.PassFile]) as a user would.
//
// Environment: TOKENSEAL_TEST_PGBIN overrides the directory of initdb and
// postgres.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// InstallHint tells how to get PostgreSQL.
const InstallHint = "install PostgreSQL 15 (scripts/install-deps.sh, or apt-get install postgresql), or set TOKENSEAL_TEST_PGBIN to the directory holding initdb and postgres"

// User is the superuser the server is made with; Password its password.
const (
	User     = "tokenseal"
	Password = "pgtest-password"
)

// Server is a running PostgreSQL server.
type Server struct {
	Dir      string // holds data/, the socket directory and the password file
	Socket   string // Unix socket directory
	Port     int    // TCP port on 127.0.0.1
	PassFile string // a .pgpass file for User on the TCP port
	// Options are extra postgres -c settings, applied at every start.
	Options []string

	bin  string
	cred *syscall.Credential // nil: run as ourselves
	cmd  *exec.Cmd
	exit chan error
	log  *os.File
}

// Bin returns the directory of initdb and postgres.
func Bin() (string, error) {
	// Debian's postgresql package: 15 on bookworm, newer on later releases.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Reverse(dirs)
	dirs = append([]string{"/usr/lib/postgresql/15/bin"}, dirs...)
	if d := os.Getenv("TOKENSEAL_TEST_PGBIN"); d != "" {
		dirs = []string{d}
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL's initdb not found in %s; %s", strings.Join(dirs, ", "), InstallHint)
}

// Start starts a server for t and stops it when t ends.
func Start(t testing.TB, options ...string) *Server {
	t.Helper()
	s, err := start(options)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.Remove)
	return s
}

// StartMain starts a server for a package's TestMain; call the returned
// function when the tests are done.
func StartMain(options ...string) (*Server, func(), error) {
	s, err := start(options)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Remove, nil
}

func start(options []string) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "sock"), bin: bin, Options: options}
	if err := s.setup(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

// setup makes the directory the server user's and runs initdb.
func (s *Server) setup() error {
	if os.Geteuid() == 0 {
		cred, err := serverUser()
		if err != nil {
			return err
		}
		s.cred = cred
	}
	pw := filepath.Join(s.Dir, "pwfile")
	if err := os.WriteFile(pw, []byte(Password+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Mkdir(s.Socket, 0o700); err != nil {
		return err
	}
	if s.cred != nil {
		for _, p := range []string{s.Dir, pw, s.Socket} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return err
			}
		}
		// The socket directory is reached by the tests, which run as root.
	}
	cmd := exec.Command(filepath.Join(s.bin, "initdb"), "-D", filepath.Join(s.Dir, "data"), "-U", User,
		"--pwfile", pw, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Dir = s.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, lastLines(string(out), 5))
	}
	os.Remove(pw)
	s.PassFile = filepath.Join(s.Dir, "pgpass")
	return nil
}

// serverUser is the unprivileged user the server runs as under root.
func serverUser() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run the server as (initdb refuses root)")
}

// Start starts (or restarts) the server on a free port and waits until it
// accepts connections.
func (s *Server) Start() error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start1(); err == nil {
			return nil
		}
	}
	return err
}

func (s *Server) start1() error {
	if s.Port == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.Port = port
		line := fmt.Sprintf("127.0.0.1:%d:*:%s:%s\n", s.Port, User, Password)
		if err := os.WriteFile(s.PassFile, []byte(line), 0o600); err != nil {
			return err
		}
	}
	log, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{"-D", filepath.Join(s.Dir, "data"), "-k", s.Socket, "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port),
		"-c", "max_connections=200", "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning"}
	for _, o := range s.Options {
		args = append(args, "-c", o)
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	// Setpgid: Kill takes its children too. Pdeathsig: a test binary that
	// dies without its clean-ups (a -timeout panic, a kill) takes the
	// server with it (SIGQUIT: PostgreSQL's immediate shutdown).
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("postgres: %w", err)
	}
	s.cmd, s.log, s.exit = cmd, log, make(chan error, 1)
	go func() { s.exit <- cmd.Wait() }()
	if err := s.waitReady(30 * time.Second); err != nil {
		s.Stop()
		s.Port = 0 // perhaps taken meanwhile: another port next time
		return err
	}
	return nil
}

func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	sock := filepath.Join(s.Socket, fmt.Sprintf(".s.PGSQL.%d", s.Port))
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exit:
			s.exit <- err
			return fmt.Errorf("postgres exited: %v: %s", err, s.logTail())
		default:
		}
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
				c.Close()
				// Listening is not accepting: wait for the end of recovery.
				if s.Ready(context.Background()) == nil {
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("postgres did not become ready within %s: %s", limit, s.logTail())
}

// Stop stops the server (SIGINT, PostgreSQL's fast shutdown, to its PID)
// and waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGINT) }

// Kill kills the server at once (SIGKILL to its process group): a crash.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		syscall.Kill(-pid, sig)
	} else {
		syscall.Kill(pid, sig)
	}
	select {
	case <-s.exit:
	case <-time.After(30 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exit
	}
	if sig == syscall.SIGKILL {
		// Its children: killed with the group, waited for by nobody;
		// give the socket back.
		os.Remove(filepath.Join(s.Socket, fmt.Sprintf(".s.PGSQL.%d", s.Port)))
	}
	s.log.Close()
	s.cmd = nil
}

// Remove stops the server and removes its directory.
func (s *Server) Remove() {
	s.Stop()
	os.RemoveAll(s.Dir)
}

// Addr is the server's TCP address.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL returns a TCP URL for database db as User, without the password
// (PassFile has it).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", User, s.Addr(), db)
}

// SocketURL returns a URL for database db over the Unix socket (trusted:
// no password).
func (s *Server) SocketURL(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.Socket, s.Port, User, db)
}

// Env is the environment a client process needs: PGPASSFILE.
func (s *Server) Env() []string { return []string{"PGPASSFILE=" + s.PassFile} }

// NewDatabase creates an empty database with a unique name and returns
// its name.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	if err := s.Exec(context.Background(), "postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return name
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return lastLines(string(b), 5)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
