package record

// MailLog is the record notify writes on stdout for each message it hands
// to the MTA, each failed attempt, and each group of alerts the hourly limit
// holds back.
type MailLog struct {
	Timestamp string   `json:"timestamp"`
	Mail      MailInfo `json:"mail"`
}

// MailInfo is the mail object of a MailLog.
//
// Status is one of:
//   - "sent": the MTA accepted the message.
//   - "retry": handing it over failed (Error says why); it stays in the
//     spool and is tried again after a backoff.
//   - "queued": the hourly limit held these alerts back; they go out in a
//     digest when the limit allows (Subject is the one they would have had).
//   - "pending": at exit the message is still in the spool, not accepted;
//     the next run sends it.
//
// Queued is the number of alerts held back by the hourly limit after this
// record.
type MailInfo struct {
	Status    string   `json:"status"`
	To        []string `json:"to"`
	Subject   string   `json:"subject"`
	Alerts    []string `json:"alerts"`
	Queued    int      `json:"queued"`
	MessageID string   `json:"message_id,omitempty"`
	Digest    bool     `json:"digest,omitempty"`
	Attempt   int      `json:"attempt,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// AppendMailLog appends r as one JSON line (without the newline) to dst.
func AppendMailLog(dst []byte, r *MailLog) ([]byte, error) {
	b, err := Marshal(r)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
