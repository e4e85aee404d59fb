complete -c amqp-publish -l on-error -d 'What to do with a line that is not a valid record' -r -f -a "fail\t'Stop at the first bad line with exit status 1'
skip\t'Skip bad lines, count them, and report the count on stderr at exit'"
complete -c amqp-publish -l max-line -d 'The longest input line accepted, in bytes; a longer line is a bad line (see --on-error) and costs no more memory than this' -r
complete -c amqp-publish -s U -l url -d 'The broker: amqp://USER:PASS@HOST:PORT/VHOST (the vhost / is %2f); rabbit:// as in oslo\'s transport_url works too, amqps:// for TLS' -r
complete -c amqp-publish -l exchange -d 'The topic exchange (oslo\'s control_exchange: Nova sets nova, oslo\'s own default is openstack)' -r
complete -c amqp-publish -l retry-for -d 'Keep trying to reach the broker this long (with backoff) before giving up' -r
complete -c amqp-publish -l topic -d 'Publish every message on this topic (routing key <TOPIC>.<priority>) instead of choosing notifications / versioned_notifications by the payload' -r
complete -c amqp-publish -l envelope -d 'The body: v2 is oslo\'s messagingv2 driver (what Nova deployments use), v1 its messaging driver (the flat dict). Input in either form is converted' -r -f -a "v1\t'The flat oslo.messaging v1 dict (driver `messaging`)'
v2\t'`{"oslo.version":"2.0","oslo.message":"<v1 dict as a JSON string>"}` (driver `messagingv2`)'"
complete -c amqp-publish -l max-in-flight -d 'At most this many messages published and not yet confirmed' -r
complete -c amqp-publish -l ack -d 'Write the number of input records confirmed (or refused as bad lines) to FILE, atomically, while the run goes on and at its end' -r -F
complete -c amqp-publish -l durable -d 'Declare the exchange and queues durable, as oslo does with amqp_durable_queues = True (oslo\'s default is non-durable). Messages are always persistent, so on durable queues they survive a broker restart. Every declarer of a name must agree'
complete -c amqp-publish -l resume -d 'Skip the input records the --ack file already counts (a rerun over the same input)'
complete -c amqp-publish -s q -l quiet -d 'No status line on a terminal'
complete -c amqp-publish -s h -l help -d 'Print help (see more with \'--help\')'
complete -c amqp-publish -s V -l version -d 'Print version'
