"""An SNS-compatible subset: standard topics, ``lambda`` and ``sqs`` subscriptions with filter
policies, and publishing that fans a message out to them."""
