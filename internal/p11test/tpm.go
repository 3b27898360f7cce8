package p11test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// TPMModule returns the tpm2-pkcs11 module.
func TPMModule() (string, error) {
	return findFile("tpm2-pkcs11 module",
		"/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
		"/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
		"/usr/lib64/pkcs11/libtpm2_pkcs11.so",
		"/usr/lib/pkcs11/libtpm2_pkcs11.so")
}

// daemon is a process started for a test and stopped by its PID.
type daemon struct {
	name string
	cmd  *exec.Cmd
	log  string
}

func startDaemon(dir, name string, env []string, args ...string) (*daemon, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s not found; %s", name, InstallHint)
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &daemon{name: name, cmd: cmd, log: logPath}, nil
}

// stop sends SIGTERM to the daemon's PID, then SIGKILL if it is still
// there after two seconds, and reaps it.
func (d *daemon) stop() {
	if d == nil {
		return
	}
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
}

// alive reports whether the daemon's process still runs (and is not a
// zombie waiting to be reaped).
func (d *daemon) alive() bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(d.cmd.Process.Pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return s
}

// freePorts returns a free port P whose successor P+1 is free too: the
// TSS's swtpm TCTI sends commands to P and control messages to P+1.
func freePorts() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no two consecutive free ports")
}

// waitFor calls ok until it succeeds, timeout passes, or it returns one
// of the fatal errors.
func waitFor(what string, timeout time.Duration, ok func() error, fatal ...error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ok()
		if err == nil {
			return nil
		}
		for _, f := range fatal {
			if errors.Is(err, f) {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come up: %w", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const dbusConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// tpmRig is the processes behind one tpm2-pkcs11 token.
type tpmRig struct {
	swtpm, dbus, abrmd *daemon
	sockDir            string
	startAbrmd         func() error
}

func (r *tpmRig) stop() {
	r.abrmd.stop()
	r.dbus.stop()
	r.swtpm.stop()
	if r.sockDir != "" {
		os.RemoveAll(r.sockDir)
	}
}

// startSwtpm starts swtpm on two consecutive free ports, trying again with other
// ports if another process took them first.
func (r *tpmRig) startSwtpm(dir string) (int, error) {
	state := filepath.Join(dir, "tpmstate")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return 0, err
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePorts()
		if err != nil {
			return 0, err
		}
		ctrl := port + 1
		d, err := startDaemon(dir, "swtpm", nil, "socket", "--tpm2",
			"--tpmstate", "dir="+state,
			"--server", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(port),
			"--ctrl", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(ctrl),
			"--flags", "not-need-init,startup-clear")
		if err != nil {
			return 0, err
		}
		err = waitFor("swtpm", 5*time.Second, func() error {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil && !d.alive() {
			// Someone else answered on the port: ours could not bind it.
			err = errors.New("swtpm exited")
		}
		if err == nil {
			r.swtpm = d
			return port, nil
		}
		d.stop()
		last = fmt.Errorf("%w: %s", err, d.tail())
	}
	return 0, last
}

// startBroker starts a private D-Bus session bus and tpm2-abrmd on it,
// talking to swtpm on port. It returns the TCTI string for tpm2-pkcs11.
func (r *tpmRig) startBroker(dir string, port int) (env []string, err error) {
	// A unix socket path must be short: not under the test's TempDir.
	if r.sockDir, err = os.MkdirTemp("", "p11t-"); err != nil {
		return nil, err
	}
	sock := filepath.Join(r.sockDir, "bus")
	conf := filepath.Join(dir, "dbus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(dbusConfig, sock)), 0o600); err != nil {
		return nil, err
	}
	if r.dbus, err = startDaemon(dir, "dbus-daemon", nil, "--config-file="+conf, "--nofork", "--nopidfile"); err != nil {
		return nil, err
	}
	// The socket file appears at bind, before the daemon listens: wait
	// until it accepts.
	if err := waitFor("dbus-daemon", 5*time.Second, func() error {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("%w: %s", err, r.dbus.tail())
	}
	var b [6]byte
	rand.Read(b[:])
	name := "com.intel.tss2.Tabrmd.p11test" + hex.EncodeToString(b[:])
	bus := "DBUS_SESSION_BUS_ADDRESS=unix:path=" + sock
	r.startAbrmd = func() error {
		var err error
		r.abrmd, err = startDaemon(dir, "tpm2-abrmd", []string{bus}, "--session", "--allow-root",
			"--dbus-name="+name, "--flush-all", "--max-transients=64",
			"--tcti=swtpm:host=127.0.0.1,port="+strconv.Itoa(port))
		return err
	}
	return []string{
		bus,
		"TPM2_PKCS11_TCTI=tabrmd:bus_name=" + name + ",bus_type=session",
		"TPM2_PKCS11_STORE=" + filepath.Join(dir, "tpm2-pkcs11"),
		// The TSS's own WARNING/ERROR lines are noise in test output.
		"TSS2_LOG=all+none",
	}, r.startAbrmd()
}

// waitBroker waits until tpm2-pkcs11 reaches the TPM through
// tpm2-abrmd, starting tpm2-abrmd again once if it exited (it gives up
// when the bus or the simulator is slow to answer under load).
func (r *tpmRig) waitBroker(env []string, module string) error {
	errExited := errors.New("tpm2-abrmd exited")
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		err = waitFor("tpm2-abrmd", 20*time.Second, func() error {
			if !r.abrmd.alive() {
				return errExited
			}
			_, err := listSlots(env, module)
			return err
		}, errExited)
		if !errors.Is(err, errExited) {
			break
		}
		r.abrmd.stop()
		if serr := r.startAbrmd(); serr != nil {
			return serr
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s", err, r.abrmd.tail())
	}
	return nil
}

// makeTPM starts swtpm, a bus and tpm2-abrmd, and initialises a
// tpm2-pkcs11 token in a store under dir.
func makeTPM(dir string) (*Token, func(), error) {
	module, err := TPMModule()
	if err != nil {
		return nil, func() {}, err
	}
	r := &tpmRig{}
	port, err := r.startSwtpm(dir)
	if err != nil {
		return nil, r.stop, err
	}
	env, err := r.startBroker(dir, port)
	if err != nil {
		return nil, r.stop, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tpm2-pkcs11"), 0o700); err != nil {
		return nil, r.stop, err
	}
	if err := r.waitBroker(env, module); err != nil {
		return nil, r.stop, err
	}
	tok := &Token{Kind: TPM2, Module: module, Dir: dir, SOPIN: SOPIN, PIN: PIN, env: env}
	tok.addTok = func(label string) (*Token, error) { return tok.initFreeSlot(label) }
	first, err := tok.initFreeSlot(uniqueLabel())
	if err != nil {
		return nil, r.stop, err
	}
	tok.Label, tok.Serial, tok.Slot = first.Label, first.Serial, first.Slot
	return tok, r.stop, nil
}

// initFreeSlot initialises the module's first uninitialised token.
func (tok *Token) initFreeSlot(label string) (*Token, error) {
	slot, err := freeSlot(tok.env, tok.Module)
	if err != nil {
		return nil, err
	}
	if err := initWithTool(tok.env, tok.Module, slot, label, tok.SOPIN, tok.PIN); err != nil {
		return nil, err
	}
	return tok.inSlot(label, slot)
}
