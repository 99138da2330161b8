// Package metrics exposes a stage's Prometheus metrics as a file for
// node_exporter's textfile collector: the hardened unit opens no socket
// (RestrictAddressFamilies, IPAddressDeny), so nothing listens; node_exporter
// reads the file, written atomically every few seconds and at exit.
package metrics

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Every is how often Start writes the file.
const Every = 5 * time.Second

// NewRegistry returns a registry for a stage's metrics: its own, without
// the Go runtime's and the process's collectors (four stages writing the
// same go_* names into one textfile collector would collide).
func NewRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// Check reports whether path can be a metrics file: its folder exists.
func Check(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	if filepath.Ext(path) != ".prom" {
		return fmt.Errorf("%s: name must end in .prom (node_exporter's textfile collector reads only those)", path)
	}
	return nil
}

// WriteFile writes g's metrics to path in the text format, atomically: a
// temporary file in the same folder, renamed over path (the collector
// never reads half a file).
func WriteFile(g prometheus.Gatherer, path string) error {
	mfs, err := g.Gather()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	_, err = tmp.Write(b.Bytes())
	if err == nil {
		err = tmp.Chmod(0o644) // node_exporter runs as its own user
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Start writes g's metrics to path now, then every Every until the
// returned stop is called, which writes them a last time and returns that
// write's error. A failed periodic write is passed to report (once until a
// write succeeds again) and never stops the stage.
func Start(g prometheus.Gatherer, path string, report func(error)) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(Every)
		defer t.Stop()
		failing := false
		for {
			err := WriteFile(g, path)
			if err != nil && !failing {
				report(err)
			}
			failing = err != nil
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			wg.Wait()
			err = WriteFile(g, path)
		})
		return err
	}
}
