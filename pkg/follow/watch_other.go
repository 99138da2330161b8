//go:build !linux

package follow

import "errors"

// A Watcher wakes followers when their files change; without inotify
// there is none, and followers poll.
type Watcher struct{}

// NewWatcher reports that this system has no inotify: callers poll.
func NewWatcher() (*Watcher, error) {
	return nil, errors.New("no inotify on this system: polling")
}

// Add does nothing: there is no Watcher.
func (w *Watcher) Add(string, chan<- struct{}) error { return nil }

// Run does nothing: there is no Watcher.
func (w *Watcher) Run() {}

// Close does nothing: there is no Watcher.
func (w *Watcher) Close() error { return nil }
