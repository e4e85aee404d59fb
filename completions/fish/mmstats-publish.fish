complete -c mmstats-publish -l count-by -d 'Count the lines by the value of this top-level field (repeatable)' -r
complete -c mmstats-publish -l gauge -d 'Publish this numeric field\'s latest value as a gauge (repeatable)' -r
complete -c mmstats-publish -l histogram -d 'Record this numeric field\'s values in a histogram (rounded; negatives as 0)' -r
complete -c mmstats-publish -l max-keys -d 'Distinct values counted per --count-by field; later new ones count as FIELD.other' -r
complete -c mmstats-publish -s o -l stats-file -d 'The fixed stats file (the keys file is FILE without .mmstats, plus -keys.mmstats)' -r -F
complete -c mmstats-publish -l line-buffered -d 'Flush after every record (the default when stdout is a terminal); use it behind `tail -f` so each record reaches the next filter at once'
complete -c mmstats-publish -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mmstats-publish -s V -l version -d 'Print version'
