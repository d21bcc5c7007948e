"""From an HTTP body to a decision, without I/O: CloudEvents envelopes (`cloudevents`),
the event catalogue and its field checks (`catalogue`, `fields`), and the decision of
the subject's aggregate (`decisions`). The write path continues in `ops_center.store`."""
