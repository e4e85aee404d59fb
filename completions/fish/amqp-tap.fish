complete -c amqp-tap -s U -l url -d 'The broker: amqp://USER:PASS@HOST:PORT/VHOST (the vhost / is %2f); rabbit:// as in oslo\'s transport_url works too, amqps:// for TLS' -r
complete -c amqp-tap -l exchange -d 'The topic exchange (oslo\'s control_exchange: Nova sets nova, oslo\'s own default is openstack)' -r
complete -c amqp-tap -l retry-for -d 'Keep trying to reach the broker this long (with backoff) before giving up' -r
complete -c amqp-tap -l queue -d 'The queue to consume (e.g. notifications.info, the queue oslo\'s driver declares)' -r
complete -c amqp-tap -l bind -d 'Bind the queue to the exchange with this binding key (a topic pattern: notifications.*, versioned_notifications.error, #); repeat for more' -r
complete -c amqp-tap -l count -d 'Stop after writing this many messages' -r
complete -c amqp-tap -l prefetch -d 'Messages the broker may send ahead of the acknowledgements' -r
complete -c amqp-tap -l durable -d 'Declare the exchange and queues durable, as oslo does with amqp_durable_queues = True (oslo\'s default is non-durable). Messages are always persistent, so on durable queues they survive a broker restart. Every declarer of a name must agree'
complete -c amqp-tap -l unwrap -d 'Write the v1 dict inside each v2 envelope instead of the envelope'
complete -c amqp-tap -s q -l quiet -d 'No status line on a terminal'
complete -c amqp-tap -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c amqp-tap -s h -l help -d 'Print help (see more with \'--help\')'
complete -c amqp-tap -s V -l version -d 'Print version'
