package cronjob

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule yields activation times.
type Schedule interface {
	// Next returns the first activation strictly after t.
	Next(t time.Time) time.Time
}

// ParseSchedule reads a standard 5-field cron expression (minute hour
// day-of-month month day-of-week, with ranges, steps, lists, names and
// "?") or a descriptor (@yearly, @annually, @monthly, @weekly, @daily,
// @midnight, @hourly, @every <duration>), evaluated in loc.
func ParseSchedule(spec string, loc *time.Location) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if loc == nil {
		loc = time.UTC
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, errors.New("TZ and CRON_TZ are not supported in the schedule; use spec.timeZone")
	}
	if strings.HasPrefix(spec, "@") {
		return parseDescriptor(spec, loc)
	}
	f := strings.Fields(spec)
	if len(f) != 5 {
		return nil, fmt.Errorf("expected exactly 5 fields, found %d: %s", len(f), spec)
	}
	s := &cronSchedule{loc: loc}
	var err error
	dst := []*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, fl := range f {
		if *dst[i], err = parseField(fl, bounds[i]); err != nil {
			return nil, err
		}
	}
	// Sunday may be written 7.
	if s.dow&(1<<7) != 0 {
		s.dow |= 1
	}
	return s, nil
}

type fieldBounds struct {
	min, max int
	names    map[string]int
}

var bounds = [5]fieldBounds{
	{0, 59, nil},
	{0, 23, nil},
	{1, 31, nil},
	{1, 12, map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}},
	{0, 7, map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}},
}

// star marks a field written as "*" or "?": day-of-month and day-of-week
// then combine with AND instead of OR, as in Vixie cron.
const star = 1 << 63

func parseField(field string, b fieldBounds) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(field, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("failed to parse int from %s", stepStr)
			}
			step = n
		}
		lo, hi := b.min, b.max
		switch {
		case rng == "*" || rng == "?":
			if step == 1 {
				bits |= star
			}
		default:
			l, h, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = value(l, b); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = value(h, b); err != nil {
					return 0, err
				}
			} else if hasStep {
				hi = b.max // "5/15" means 5-max/15
			}
			if hi < lo {
				return 0, fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", lo, hi, part)
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

func value(s string, b fieldBounds) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		m, ok := b.names[strings.ToLower(s)]
		if !ok {
			return 0, fmt.Errorf("failed to parse int from %s", s)
		}
		n = m
	}
	if n < b.min {
		return 0, fmt.Errorf("beginning of range (%d) below minimum (%d): %s", n, b.min, s)
	}
	if n > b.max {
		return 0, fmt.Errorf("end of range (%d) above maximum (%d): %s", n, b.max, s)
	}
	return n, nil
}

func parseDescriptor(spec string, loc *time.Location) (Schedule, error) {
	switch spec {
	case "@yearly", "@annually":
		return ParseSchedule("0 0 1 1 *", loc)
	case "@monthly":
		return ParseSchedule("0 0 1 * *", loc)
	case "@weekly":
		return ParseSchedule("0 0 * * 0", loc)
	case "@daily", "@midnight":
		return ParseSchedule("0 0 * * *", loc)
	case "@hourly":
		return ParseSchedule("0 * * * *", loc)
	}
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("failed to parse duration %s: %w", spec, err)
		}
		if dur < time.Second {
			dur = time.Second
		}
		return every(dur.Truncate(time.Second)), nil
	}
	return nil, fmt.Errorf("unrecognized descriptor: %s", spec)
}

// every activates at a fixed interval, on whole seconds.
type every time.Duration

func (e every) Next(t time.Time) time.Time {
	return t.Add(time.Duration(e) - time.Duration(t.Nanosecond()))
}

type cronSchedule struct {
	minute, hour, dom, month, dow uint64
	loc                           *time.Location
}

func has(bits uint64, v int) bool { return bits&(1<<uint(v)) != 0 }

// Next walks forward field by field (month, day, hour, minute), resetting
// the finer fields whenever a coarser one advances. It gives up after five
// years (an impossible date such as 30 February).
func (s *cronSchedule) Next(t time.Time) time.Time {
	orig := t.Location()
	t = t.In(s.loc)
	t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute()+1, 0, 0, s.loc)
	limit := t.Year() + 5
	for t.Year() <= limit {
		if !has(s.month, int(t.Month())) {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, s.loc)
			continue
		}
		if !s.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, s.loc)
			continue
		}
		if !has(s.hour, t.Hour()) {
			next := time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, s.loc)
			if !next.After(t) { // a DST fold repeats the hour
				next = t.Truncate(time.Minute).Add(time.Hour - time.Duration(t.Minute())*time.Minute)
			}
			t = next
			continue
		}
		if !has(s.minute, t.Minute()) {
			t = t.Add(time.Minute)
			continue
		}
		return t.In(orig)
	}
	return time.Time{}
}

func (s *cronSchedule) dayMatches(t time.Time) bool {
	dom, dow := has(s.dom, t.Day()), has(s.dow, int(t.Weekday()))
	if s.dom&star != 0 || s.dow&star != 0 {
		return dom && dow
	}
	return dom || dow
}
