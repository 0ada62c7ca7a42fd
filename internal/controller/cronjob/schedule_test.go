package cronjob

import (
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		spec string
		loc  *time.Location
		from string
		want string
	}{
		{"*/1 * * * *", time.UTC, "2026-01-01T12:00:30Z", "2026-01-01T12:01:00Z"},
		{"*/15 * * * *", time.UTC, "2026-01-01T12:00:00Z", "2026-01-01T12:15:00Z"},
		{"5 4 * * *", time.UTC, "2026-01-01T12:00:00Z", "2026-01-02T04:05:00Z"},
		{"0 9 * * mon-fri", time.UTC, "2026-01-02T10:00:00Z", "2026-01-05T09:00:00Z"}, // Fri → Mon
		{"0 0 1,15 * *", time.UTC, "2026-01-02T00:00:00Z", "2026-01-15T00:00:00Z"},
		{"0 0 13 * 5", time.UTC, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"}, // dom OR dow: Friday 2nd
		{"30 2 * feb *", time.UTC, "2026-01-01T00:00:00Z", "2026-02-01T02:30:00Z"},
		{"0 0 * * 7", time.UTC, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"}, // 7 is Sunday
		{"@hourly", time.UTC, "2026-01-01T12:00:00Z", "2026-01-01T13:00:00Z"},
		{"@daily", time.UTC, "2026-01-01T12:00:00Z", "2026-01-02T00:00:00Z"},
		{"@yearly", time.UTC, "2026-01-01T12:00:00Z", "2027-01-01T00:00:00Z"},
		{"@every 90s", time.UTC, "2026-01-01T12:00:00.5Z", "2026-01-01T12:01:30Z"},
		{"0 9 * * *", ny, "2026-01-01T12:00:00Z", "2026-01-01T14:00:00Z"}, // 9:00 EST
		{"0 0 30 2 *", time.UTC, "2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z"},
	} {
		s, err := ParseSchedule(tc.spec, tc.loc)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if got := s.Next(utc(tc.from)); !got.Equal(utc(tc.want)) {
			t.Errorf("%q after %s: %s, want %s", tc.spec, tc.from, got.UTC().Format(time.RFC3339), tc.want)
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	for _, spec := range []string{"", "* * * *", "60 * * * *", "* 24 * * *", "@often", "@every x", "CRON_TZ=UTC * * * * *", "5-1 * * * *", "*/0 * * * *"} {
		if _, err := ParseSchedule(spec, time.UTC); err == nil {
			t.Errorf("%q accepted", spec)
		}
	}
}

func TestMostRecentScheduleTime(t *testing.T) {
	s, _ := ParseSchedule("*/1 * * * *", time.UTC)
	from := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now    time.Duration
		want   time.Duration // -1: none
		missed int64
	}{
		{30 * time.Second, -1, 0},
		{60 * time.Second, time.Minute, 1},
		{90 * time.Second, time.Minute, 1},
		{150 * time.Second, 2 * time.Minute, 2},
		{3 * time.Hour, 3 * time.Hour, 180},
	} {
		got, missed, err := mostRecentScheduleTime(from, from.Add(tc.now), s)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (tc.want < 0) || (got != nil && !got.Equal(from.Add(tc.want))) || missed != tc.missed {
			t.Errorf("now=+%v: %v (%d missed), want +%v (%d)", tc.now, got, missed, tc.want, tc.missed)
		}
	}
}
