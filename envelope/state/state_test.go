package state

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	if err := CheckFreshness(now.Add(-6*day), now, 7*day, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := CheckFreshness(now.Add(4*time.Minute), now, 7*day, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, ts := range []time.Time{now.Add(-8 * day), now.Add(6 * time.Minute)} {
		if err := CheckFreshness(ts, now, 7*day, 5*time.Minute); !errors.Is(err, ErrReplay) {
			t.Fatalf("%v: %v", ts, err)
		}
	}
}

// Issue 11 item 8: a timestamp of 2^63 ms or more (read as
// time.UnixMilli(int64(ts)), the year -292275055) or from the year 10000
// on is refused as impossible, naming the value, even with limits that
// would let it through.
func TestFreshnessImpossible(t *testing.T) {
	now := time.Now()
	forever := time.Duration(1<<63 - 1)
	for _, ms := range []uint64{1 << 63, 1<<64 - 1, MaxTimestamp, 1 << 62} {
		err := CheckFreshness(time.UnixMilli(int64(ms)), now, forever, forever)
		if !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "impossible timestamp") {
			t.Errorf("timestamp %d: %v", ms, err)
		}
	}
	last := time.UnixMilli(MaxTimestamp - 1)
	if err := CheckFreshness(last, last, time.Minute, time.Minute); err != nil {
		t.Errorf("the last timestamp of the year 9999: %v", err)
	}
	if err := CheckFreshness(time.UnixMilli(0), time.UnixMilli(0), time.Minute, time.Minute); err != nil {
		t.Errorf("timestamp 0: %v", err)
	}
}

// SerialToSQL keeps the unsigned order in the signed one.
func TestSerialToSQL(t *testing.T) {
	vals := []uint64{0, 1, 1<<63 - 1, 1 << 63, 1<<63 + 1, 1<<64 - 1}
	for i := range vals {
		if SerialFromSQL(SerialToSQL(vals[i])) != vals[i] {
			t.Errorf("%d does not round-trip", vals[i])
		}
		if i > 0 && SerialToSQL(vals[i-1]) >= SerialToSQL(vals[i]) {
			t.Errorf("order lost between %d and %d", vals[i-1], vals[i])
		}
	}
}

// The rule asks whether a serial was seen only when that decides, and
// never moves the window when it refuses.
func TestAdmit(t *testing.T) {
	never := func(uint64) (time.Time, bool, error) { t.Fatal("seen asked"); return time.Time{}, false, nil }
	w := Window{}
	if r, _ := w.Admit(50, 8, "a", never); r != nil || w.Highest != 50 || w.Floor != 0 {
		t.Fatalf("first serial: %v %+v", r, w)
	}
	if r, _ := w.Admit(60, 8, "a", never); r != nil || w.Highest != 60 || w.Floor != 52 {
		t.Fatalf("above: %v %+v", r, w)
	}
	if r, _ := w.Admit(52, 8, "a", never); r == nil || !r.TooOld || w.Highest != 60 {
		t.Fatalf("at the floor: %v %+v", r, w)
	}
	boom := errors.New("boom")
	if _, err := w.Admit(55, 8, "a", func(uint64) (time.Time, bool, error) { return time.Time{}, false, boom }); err != boom {
		t.Fatalf("lookup error: %v", err)
	}
	at := time.Unix(1, 0)
	if r, _ := w.Admit(55, 8, "a", func(uint64) (time.Time, bool, error) { return at, true, nil }); r == nil || !r.AcceptedAt.Equal(at) {
		t.Fatalf("seen: %v", r)
	}
	if r, _ := w.Admit(0, 8, "a", never); r == nil || !r.Invalid || !strings.Contains(r.Error(), "serials start at 1") {
		t.Fatalf("serial 0: %v", r)
	}
}
