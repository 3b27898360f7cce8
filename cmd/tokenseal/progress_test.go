package main

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestShowProgress(t *testing.T) {
	for _, c := range []struct {
		quiet, terminal bool
		size            int64
		want            bool
	}{
		{false, true, 100 << 20, true},
		{false, true, progressThreshold, true},
		{false, true, progressThreshold - 1, false}, // small: done before a bar helps
		{false, true, 0, false},
		{false, true, -1, true}, // unknown size: shown once it passes the threshold
		{true, true, 100 << 20, false},
		{false, false, 100 << 20, false}, // stderr not a terminal
		{false, false, -1, false},
	} {
		if got := showProgress(c.quiet, c.terminal, c.size); got != c.want {
			t.Errorf("showProgress(quiet=%v, terminal=%v, size=%d) = %v", c.quiet, c.terminal, c.size, got)
		}
	}
}

// A nil progress (no bar) hands the reader back untouched, so the streams
// keep any fast paths of their own.
func TestProgressNil(t *testing.T) {
	var p *progress
	r := strings.NewReader("x")
	if got := p.Reader(r); got != io.Reader(r) {
		t.Errorf("nil progress wrapped the reader")
	}
	p.AddTotal(1)
	p.Start()
	p.Finish()
	p.Stop()
}

// syncBuffer is a bytes.Buffer safe for the drawing goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressDraws(t *testing.T) {
	const size = 8 << 20
	var out syncBuffer
	p := newProgressTo(&out, "sealing", size)
	defer p.Stop()
	data := bytes.Repeat([]byte{'x'}, size)
	r := p.Reader(iotest.HalfReader(bytes.NewReader(data)))
	if out.String() != "" {
		t.Fatal("drew before Start")
	}
	p.Start()
	p.Start()
	half := make([]byte, size/2)
	if _, err := io.ReadFull(r, half); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "50%") {
		if time.Now().After(deadline) {
			t.Fatalf("no 50%% drawn: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	p.Finish()
	p.Stop() // no-op after Finish
	s := out.String()
	for _, want := range []string{"sealing", "100%", "8.4 MB", "MB/s", "\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q: %q", want, s)
		}
	}
	if got := p.n.Load(); got != size {
		t.Errorf("counted %d bytes, want %d", got, size)
	}
}

// Stop erases the bar (an error message follows); a stream of unknown size
// shows nothing until it passes the threshold.
func TestProgressStopAndUnknownSize(t *testing.T) {
	var out syncBuffer
	p := newProgressTo(&out, "opening", -1)
	p.Start()
	io.Copy(io.Discard, p.Reader(strings.NewReader(strings.Repeat("x", progressThreshold/2))))
	time.Sleep(3 * progressInterval)
	if s := out.String(); s != "" {
		t.Errorf("small stream of unknown size drew: %q", s)
	}
	io.Copy(io.Discard, p.Reader(strings.NewReader(strings.Repeat("x", progressThreshold))))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "MB") {
		if time.Now().After(deadline) {
			t.Fatalf("nothing drawn past the threshold: %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Stop()
	if s := out.String(); !strings.HasSuffix(s, "\033[2K\r") {
		t.Errorf("Stop did not erase the line: %q", s[max(0, len(s)-40):])
	}
}

// The counting reader costs an atomic add per Read: at most a few
// nanoseconds over the reader it wraps.
func BenchmarkCountingReader(b *testing.B) {
	p := newProgressTo(io.Discard, "", 1<<40)
	buf := make([]byte, 64<<10)
	r := p.Reader(zeroReader{})
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		r.Read(buf)
	}
}

type zeroReader struct{}

func (zeroReader) Read(b []byte) (int, error) { return len(b), nil }
