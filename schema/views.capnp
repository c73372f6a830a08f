# Values stored by the projections (sealed with the project's data key before they are
# written). Append fields, never renumber: a rebuild must reproduce these bytes exactly.
@0xc9a4be7d1f3a2e61;

$import "/capnp/c++.capnp".namespace("trail::schema");
using Event = import "event.capnp";

struct CaseRecord {
  # The current state of one case.
  caseId @0 :Data;
  caseType @1 :Text;
  name @2 :Text;
  owner @3 :Text;
  closed @4 :Bool;
  fields @5 :List(Event.Field);        # sorted by name
  indices @6 :List(Event.CaseIndex);   # sorted by name
  openedUs @7 :Int64;                  # server time of the first event of the case
  modifiedUs @8 :Int64;                # server time of the last event
  closedUs @9 :Int64;                  # server time of the last close; 0 while never closed
  lastUser @10 :Text;
  lastSeq @11 :UInt64;
  implicit @12 :Bool;                  # first seen in an update, not a create
  lastClientUs @13 :Int64;             # latest device time among the events folded
  recentSeqs @14 :List(UInt64);        # seqs of the case's latest events, not yet in a chunk
  recentClientUs @15 :List(Int64);     # their device times, in the same order
  runFirstSeq @16 :UInt64;             # where the latest event's run began (docs/CASES.md)
  runFirstUs @17 :Int64;               # that event's server time
}

enum Action {
  create @0;
  update @1;
  close @2;
  reopen @3;
  index @4;
  owner @5;
  implicitCreate @6;   # an event for a case that did not exist created it
  closeClosed @7;      # a close of a case that was already closed (state unchanged)
  type @8;
  name @9;
}

struct Change {
  action @0 :Action;
  field @1 :Text;       # the field, index or attribute changed; empty for the case itself
  prior @2 :Text;
  hadPrior @3 :Bool;
  value @4 :Text;
  unchanged @5 :Bool;   # set to the value it already had
}

struct HistoryEntry {
  # One event's effect on one case: who changed what, when, how and from which prior value.
  # Not stored: the case view derives entries at query time by folding the case's events from
  # the ledger (so prior values are never kept twice). Kept as the schema of that answer.
  seq @0 :UInt64;
  serverTimeUs @1 :Int64;
  clientTimeUs @2 :Int64;
  actor @3 :Text;
  deviceId @4 :Text;
  channel @5 :Event.Channel;
  eventId @6 :Data;
  via @7 :Data;
  kind @8 :Event.Kind;
  changes @9 :List(Change);
  formXmlns @10 :Text;  # the form of the submission named in `via`, when Trail holds it
}
