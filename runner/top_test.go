package runner

import (
	"reflect"
	"testing"
)

func TestParsePS(t *testing.T) {
	out := `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         500       1  0 10:01 ?        00:00:00 sleep 300
100999       501     500  0 10:01 pts/0    00:00:00 sh -c echo a  b
root         502       1  0 10:01 ?        00:00:00 other
`
	res, err := parsePS([]byte(out), []int{500, 501})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Titles, []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}) {
		t.Fatalf("titles: %v", res.Titles)
	}
	want := [][]string{
		{"root", "500", "1", "0", "10:01", "?", "00:00:00", "sleep 300"},
		{"100999", "501", "500", "0", "10:01", "pts/0", "00:00:00", "sh -c echo a b"},
	}
	if !reflect.DeepEqual(res.Processes, want) {
		t.Fatalf("rows: %q", res.Processes)
	}
	// Thread rows ("-" as pid) follow their process.
	threads := "PID TID CMD\n500 - sleep\n- 500 -\n- 503 -\n600 - x\n- 600 -\n"
	res, err = parsePS([]byte(threads), []int{500})
	if err != nil || len(res.Processes) != 3 {
		t.Fatalf("threads: %q %v", res.Processes, err)
	}
	if _, err := parsePS([]byte("USER CMD\nroot x\n"), []int{1}); err == nil {
		t.Fatal("ps output without PID accepted")
	}
}
