package commands

import (
	"testing"
	"time"
)

func TestParseTimeArg(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	cases := map[string]time.Time{
		"":                               {},
		"10m":                            now.Add(-10 * time.Minute),
		"1h30m":                          now.Add(-90 * time.Minute),
		"2024-05-06T07:00:00Z":           time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC),
		"2024-05-06T07:00:00.5+02:00":    time.Date(2024, 5, 6, 5, 0, 0, 500000000, time.UTC),
		"1700000000":                     time.Unix(1700000000, 0),
		"1700000000.25":                  time.Unix(1700000000, 250000000),
		"2024-05-06":                     time.Date(2024, 5, 6, 0, 0, 0, 0, time.Local),
		"2024-05-06T07:08:09.123456789Z": time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
	}
	for in, want := range cases {
		got, err := parseTimeArg(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "1e9", "10x"} {
		if _, err := parseTimeArg(in, now); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
