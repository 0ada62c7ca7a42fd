package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestObserveSync(t *testing.T) {
	m := New()
	m.ObserveSync("podgc", time.Now(), nil)
	_ = m.Timed("podgc", func() error { return errors.New("boom") })
	_ = m.Timed("disruption", func() error { return nil })

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`skiff_controller_sync_total{controller="podgc"} 2`,
		`skiff_controller_sync_errors_total{controller="podgc"} 1`,
		`skiff_controller_sync_total{controller="disruption"} 1`,
		`skiff_controller_sync_duration_seconds_count{controller="podgc"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `skiff_controller_sync_errors_total{controller="disruption"}`) {
		t.Error("error counter for a controller without errors")
	}
}

func TestNilRecordsNothing(t *testing.T) {
	var m *Metrics
	if err := m.Timed("x", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}
