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
//   - "failed": the MTA refused the message for good (an SMTP 5xx, a
//     sendmail exit status such as EX_NOUSER) several times in a row (Error
//     says why); it was moved to the spool's failed/ directory (File), is
//     not sent again, and the messages behind it go on.
//
// Queued is the number of alerts held back by the hourly limit after this
// record.
type MailInfo struct {
	Status    string   `json:"status"`
	To        []string `json:"to"`
	Subject   string   `json:"subject"`
	Alerts    []string `json:"alerts"`
	Queued    int      `json:"queued"`
	Omitted   int      `json:"omitted,omitempty"` // alerts in the message beyond its size cap: counted, not listed
	MessageID string   `json:"message_id,omitempty"`
	Digest    bool     `json:"digest,omitempty"`
	Part      int      `json:"part,omitempty"`  // the message is part Part of Parts of one notification too large for one message
	Parts     int      `json:"parts,omitempty"` // (both absent when it is the notification's only message)
	Attempt   int      `json:"attempt,omitempty"`
	Error     string   `json:"error,omitempty"`
	File      string   `json:"file,omitempty"` // with "failed": where the message is kept
	Via       string   `json:"via,omitempty"`  // the transport, when not mail: "webhook https://host"
}

// AppendMailLog appends r as one JSON line (without the newline) to dst.
func AppendMailLog(dst []byte, r *MailLog) ([]byte, error) {
	b, err := Marshal(r)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}
