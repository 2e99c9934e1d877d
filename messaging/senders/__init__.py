"""Gateways behind one interface (`Sender`): SMPP (smpplib) and a configurable HTTP gateway."""
