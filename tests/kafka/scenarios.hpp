// Scenarios run both against librdkafka's mock cluster (cppfly_kafka_tests) and against a
// real broker (cppfly_kafka_real_tests). Each uses fresh topic and group names.
#pragma once

#include "support.hpp"

namespace cppfly::kafka::test {

/// Key, headers (a repeated name included), explicit partition, offset and timestamp survive.
void round_trip_scenario(TestCluster& cluster);
/// Two groups each get every message, exactly once.
void two_groups_scenario(TestCluster& cluster);
/// Two members of one group split a 4-partition topic and together see each message once.
void group_split_scenario(TestCluster& cluster);
/// A group subscribed after start() gets what the topic holds; a broadcast subscription
/// made after start() gets only what was published after it.
void subscribe_after_start_scenario(TestCluster& cluster);
/// A clean stop, then a new adapter on the same group: nothing lost, nothing redelivered.
void stop_restart_scenario(TestCluster& cluster);
/// A handler that throws does not stop its consumer, and the failed record is not redelivered.
void faulting_handler_scenario(TestCluster& cluster);
/// Group-less subscriptions in two adapters both get every message.
void broadcast_scenario(TestCluster& cluster);
/// publish() returns the record's place; publish_async's callback runs once per record with the
/// place the consumer then sees; flush() returns once every report ran; the future form beside it.
void delivery_forms_scenario(TestCluster& cluster);
/// A committed transaction's records reach a listener; an aborted one's never do (a
/// read_uncommitted reader sees that they were written).
void transactions_scenario(TestCluster& cluster);
/// PullConsumer: poll, commit, seek, pause/resume; a new member resumes from the commit.
void pull_consumer_scenario(TestCluster& cluster);
/// A batch listener gets 20 records in one batch; BatchFailure at index 7 settles 0-6, retries 7
/// until its retries are exhausted, dead-letters it alone, then handles 8-19; a restart of the group
/// gets none of them again.
void batch_listener_scenario(TestCluster& cluster);

}  // namespace cppfly::kafka::test
