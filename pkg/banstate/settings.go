package banstate

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// settingsBucket holds what the running block was started with (name ->
// bytes the caller chose), so a subcommand run while no block runs can
// act as the running one would (its --ar-log, allow list, backends).
var settingsBucket = []byte("settings")

// Setting returns the value SetSetting stored under name, nil if none.
func (s *Store) Setting(name string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(settingsBucket); b != nil {
			v = append([]byte(nil), b.Get([]byte(name))...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", s.path, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// SetSetting stores v under name.
func (s *Store) SetSetting(name string, v []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(settingsBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return fmt.Errorf("state %s: %w", s.path, err)
	}
	return nil
}
